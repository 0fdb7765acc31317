"""The report's PNG charts (matplotlib, Agg): horizontal bars and stacked columns, with a CJK
font when the machine has one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kb.vocabulary import HandoffReason

if TYPE_CHECKING:
    from matplotlib.axes import Axes

REASON_COLOURS = {
    HandoffReason.LOW_CONFIDENCE: "#d62728",
    HandoffReason.MONEY: "#1f77b4",
    HandoffReason.UPSET: "#ff7f0e",
    HandoffReason.REQUESTED: "#9467bd",
    HandoffReason.PRIVACY: "#8c564b",
    HandoffReason.ORDER_UNAVAILABLE: "#7f7f7f",
    HandoffReason.ORDER_LOCKED: "#e377c2",
}

OUTCOME_COLOURS = {"answered": "#2ca02c", "menu": "#e6a100", "handed off": "#d62728", "order lookup": "#1f77b4"}

_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "Arial Unicode MS",
)


@lru_cache(maxsize=1)
def _fonts() -> tuple[tuple[str, ...], frozenset[int]]:
    """The chart font families (DejaVu Sans, then a CJK font where one is installed) and every
    character they can draw: a label they cannot draw is shown by its number instead of boxes."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    installed = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    families = ("DejaVu Sans", *[name for name in _CJK_FONTS if name in installed][:1])
    drawable: set[int] = set()
    for name in families:
        if name in installed:
            drawable |= set(FT2Font(installed[name]).get_charmap())
    return families, frozenset(drawable)


def chart_label(rank: int, entry_id: str | None, text: str, limit: int = 36) -> str:
    """``#rank`` and the entry id or the text, where the chart's fonts can draw it; the number
    always matches the table's row."""
    shown = entry_id or " ".join(text.split())
    shown = shown if len(shown) <= limit else shown[: limit - 1] + "…"
    _, drawable = _fonts()
    if shown and all(ord(ch) in drawable for ch in shown):
        return f"#{rank} {shown}"
    return f"#{rank} (see the table)"


@contextmanager
def _axes(path: Path, width: float, height: float) -> Iterator[Axes]:
    """A figure on matplotlib's Agg canvas (no display, no global pyplot state), saved on exit."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.family": list(_fonts()[0])}):
        figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
        FigureCanvasAgg(figure)
        yield figure.subplots()
        figure.savefig(path)


def barh(path: Path, title: str, xlabel: str, labels: list[str], series: dict[str, list[int]], colours: dict[str, str]) -> Path:
    """Horizontal bars, first row on top, the series stacked; empty series are left out."""
    with _axes(path, 7.5, 1.0 + 0.42 * len(labels)) as axes:
        left = np.zeros(len(labels))
        for name, values in series.items():
            if any(values):
                axes.barh(range(len(labels)), values, left=left, color=colours[name], label=name)
                left += values
        axes.set_yticks(range(len(labels)), labels, fontsize=8)
        axes.invert_yaxis()
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_xlabel(xlabel)
        axes.set_title(title)
        if sum(1 for values in series.values() if any(values)) > 1:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside the bars, never on them
    return path


def stacked_columns(path: Path, title: str, periods: list[date], counts: dict[str, list[int]]) -> Path:
    """One column per period, stacked by reason, in the same colour for a reason in every report."""
    with _axes(path, min(16.0, max(6.0, 0.22 * len(periods) + 2.5)), 4.0) as axes:
        bottom = np.zeros(len(periods))
        spare = iter(["#17becf", "#bcbd22", "#e377c2"] * 5)
        for reason, values in counts.items():
            axes.bar(range(len(periods)), values, bottom=bottom, color=REASON_COLOURS.get(reason) or next(spare), label=reason)
            bottom += values
        every = max(1, len(periods) // 15)
        axes.set_xticks(range(0, len(periods), every), [f"{p:%m-%d}" for p in periods[::every]], rotation=45, fontsize=8)
        axes.yaxis.get_major_locator().set_params(integer=True)
        axes.set_ylabel("handoffs")
        axes.set_title(title)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return path
