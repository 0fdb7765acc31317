"""Tables for the terminal and ``kb eval --report PATH``: a Markdown report with the same tables
and PNG charts (recall@k per configuration, the precision–coverage curve), so that an editor
can look rather than read.

Charts are drawn with matplotlib's Agg canvas (no display needed) and written beside the report.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from eval.calibrate import Calibration, Figures
from eval.compare import RECALL_KS, Row, shortfalls
from eval.confidence import LanguageFit

LABELS = {
    "recall_at_1": "recall@1",
    "recall_at_3": "recall@3",
    "recall_at_5": "recall@5",
    "mrr": "MRR",
    "oos_auroc": "OOS AUROC",
    "coverage": "coverage",
    "answerable_coverage": "coverage of the answerable",
    "answered_precision": "answered precision",
    "accuracy": "accuracy",
    "answered_in_scope": "answered, of the in-scope",
    "menu_rate": "menu rate",
    "resolved": "resolved (answered right or in the menu)",
    "oos_answered": "out of scope answered",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "n_queries": "questions",
    "money_recall": "money recall",
    "money_precision": "money precision",
}


def fmt(value: float | int | None, key: str = "") -> str:
    """A figure as it is printed: three decimals, latencies in ms with one, n/a when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}" if key.endswith("_ms") else f"{value:.3f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """Columns aligned for a terminal, or a Markdown table."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def compare_table(rows: list[Row], markdown: bool = False) -> str:
    """One row per configuration, one column per metric of ``kb eval`` (the question count once, above)."""
    keys = [k for k in LABELS if k != "n_queries" and any(k in r.metrics for r in rows)]
    body = [[r.name, *(fmt(r.metrics.get(k), k) for k in keys)] for r in rows]
    return table(["configuration", *(LABELS[k] for k in keys)], body, markdown)


def metrics_table(metrics: dict[str, float | int | None], markdown: bool = False) -> str:
    return table(["figure", "value"], [[LABELS.get(k, k), fmt(v, k)] for k, v in metrics.items()], markdown)


def calibration_text(result: Calibration, markdown: bool = False) -> str:
    """The chosen thresholds, what they give on each half, and the precision–coverage table."""
    half = "even-numbered questions (2nd, 4th, ...)"
    out = []
    if not result.found:
        out.append(
            f"No answer threshold keeps answered precision at {result.target:.2f} or above on the {half}: "
            f"the best reachable is {fmt(result.best_precision)}. The thresholds are left as they are."
        )
    else:
        out.append(
            f"Thresholds for answered precision ≥ {result.target:.2f}, chosen on the {half}: "
            f"{_thresholds_in_words(result.answer, result.menu)}."
        )
    out.append("")
    rows = []
    if result.found:
        rows += [["chosen, calibration half", *_figures_cells(result.calibration)]]
        rows += [["chosen, held-out half", *_figures_cells(result.held_out)]]
    configured = f"configured ({result.configured.answer} / {result.configured.menu}), held-out half"
    rows.append([configured, *_figures_cells(result.configured_held_out)])
    if result.most_accurate is not None:
        answer, menu = result.most_accurate
        rows.append([f"best joint accuracy ({answer} / {menu}), held-out half", *_figures_cells(result.most_accurate_held_out)])
    headers = [
        "thresholds",
        "answered precision",
        "coverage",
        "of the answerable",
        "joint accuracy",
        "menu rate",
        "menu offers right",
        "resolved",
        "questions",
    ]
    out.append(table(headers, rows, markdown))
    if result.curve:
        out += ["", "Precision–coverage curve (answer threshold; menu threshold as chosen):", ""]
        curve = [
            [
                f"{p.threshold:g}" + (" (chosen)" if p.threshold == result.answer else ""),
                fmt(p.precision),
                fmt(p.coverage),
                fmt(p.held_out_precision),
                fmt(p.held_out_coverage),
            ]
            for p in result.curve
        ]
        headers = ["answer ≥", "precision (calibration)", "coverage", "precision (held out)", "coverage (held out)"]
        out.append(table(headers, curve, markdown))
    return "\n".join(out)


def _thresholds_in_words(answer: float, menu: float) -> str:
    if menu >= answer:
        return f"answer ≥ {answer}; no menus (below it, hand off)"
    return f"answer ≥ {answer}, menu ≥ {menu} (below it, hand off)"


def _figures_cells(f: Figures | None) -> list[str]:
    if f is None:
        return ["n/a"] * 8
    cells = [f.answered_precision, f.coverage, f.answerable_coverage, f.accuracy, f.menu_rate, f.menu_helpful, f.resolved]
    return [*(fmt(c) for c in cells), str(f.n)]


def _canvas(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def recall_chart(rows: list[Row], path: Path) -> Path:
    """Grouped bars: recall@1/3/5/10 for each configuration."""
    figure = _canvas(max(6.0, 1.6 * len(rows) + 2), 4.0)
    axes = figure.subplots()
    width = 0.8 / len(RECALL_KS)
    recalls = [r.recall_at_k() for r in rows]
    for j, k in enumerate(RECALL_KS):
        xs = [i + (j - (len(RECALL_KS) - 1) / 2) * width for i in range(len(rows))]
        bars = axes.bar(xs, [r[k] for r in recalls], width, label=f"recall@{k}")
        axes.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    axes.set_xticks(range(len(rows)), [r.name for r in rows], rotation=15, ha="right", fontsize=8)
    axes.set_ylim(0, 1.08)
    axes.set_ylabel("share of in-scope questions")
    axes.set_title("Recall@k per configuration")
    axes.legend(loc="lower right", fontsize=8)
    figure.savefig(path)
    return path


def precision_coverage_chart(result: Calibration, path: Path) -> Path:
    """Answered precision against coverage over every answer threshold, both halves, with the
    target, the chosen thresholds, the most accurate ones and the configured ones marked (the
    points are held-out figures)."""
    figure = _canvas(6.0, 4.5)
    axes = figure.subplots()
    if result.full_curve is not None:
        for sweep, label, style in zip(result.full_curve, ("calibration half", "held-out half"), ("-", "--"), strict=True):
            axes.plot(sweep.coverage, sweep.precision, style, drawstyle="steps-post", label=label)
    axes.axhline(result.target, color="grey", linewidth=0.8, linestyle=":", label=f"target {result.target:.2f}")
    if result.held_out is not None:
        chosen = f"chosen (answer ≥ {result.answer})"
        axes.plot([result.held_out.coverage], [result.held_out.answered_precision], "o", color="C3", label=chosen)
    accurate = result.most_accurate_held_out
    if accurate is not None and not math.isnan(accurate.answered_precision) and result.most_accurate is not None:
        label = f"best joint accuracy (answer ≥ {result.most_accurate[0]})"
        axes.plot([accurate.coverage], [accurate.answered_precision], "^", color="C4", label=label)
    if result.configured_held_out is not None and not math.isnan(result.configured_held_out.answered_precision):
        axes.plot(
            [result.configured_held_out.coverage],
            [result.configured_held_out.answered_precision],
            "s",
            color="C2",
            label=f"configured (answer ≥ {result.configured.answer})",
        )
    lowest = min([result.target, *(float(s.precision.min()) for s in result.full_curve or () if len(s.precision))])
    axes.set_xlim(0, 1)
    axes.set_ylim(max(0.0, math.floor(lowest * 10 - 0.5) / 10), 1.01)  # the interesting band, not 0–1
    axes.set_xlabel("coverage (share of questions answered)")
    axes.set_ylabel("answered precision")
    axes.set_title("Precision–coverage")
    axes.legend(loc="lower left", fontsize=8)
    figure.savefig(path)
    return path


def machine() -> str:
    """Cores and CPU model: timings mean nothing without them."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}"


def write_report(
    path: Path,
    folder: Path,
    metrics: dict[str, float | int | None],
    rows: list[Row],
    calibration: Calibration | None = None,
) -> list[Path]:
    """Write the Markdown report at ``path`` and its charts beside it; returns every file written.

    ``rows`` holds at least the product pipeline's row (its outcomes feed the recall chart).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    written = []
    lines = [
        f"# Evaluation of `{folder}`",
        "",
        f"{metrics.get('n_queries')} questions, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, on {machine()}.",
        "",
        "## The product pipeline",
        "",
        metrics_table(metrics, markdown=True),
        "",
    ]
    if len(rows) > 1:
        lines += ["## Side by side", "", compare_table(rows, markdown=True), ""]
        lines.append(
            "Coverage, answered precision and accuracy of a part use the product's confidence calibration "
            "and thresholds; compare the parts on recall, MRR and AUROC."
        )
        behind = [f"- **{s}**" for s in shortfalls(rows)]
        lines += ["", *(behind or ["The product pipeline wins or ties on recall@1 and AUROC."])]
        lines.append("")
    chart = recall_chart(rows, path.parent / f"{stem}-recall.png")
    written.append(chart)
    lines += [f"![recall@k per configuration]({chart.name})", ""]
    if calibration is not None:
        lines += ["## Calibration", "", calibration_text(calibration, markdown=True), ""]
        if calibration.full_curve is not None:
            curve = precision_coverage_chart(calibration, path.parent / f"{stem}-precision-coverage.png")
            written.append(curve)
            lines += [f"![precision against coverage]({curve.name})", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return [path, *written]


def confidence_text(fits: list[LanguageFit], markdown: bool = False) -> str:
    """The fitted confidence of each language, its held-out AUROC and reliability."""
    if not fits:
        return "No language has enough questions to fit its confidence."
    out = []
    for fit in fits:
        c = fit.calibration
        out.append(
            f"Confidence of {fit.language} ({fit.questions} questions), fitted on the even-numbered ones: "
            f"bias = {c.bias}, w_top = {c.w_top}, w_gap = {c.w_gap}, w_agree = {c.w_agree}. "
            f"Held-out AUROC (right top entry against the rest) {fmt(fit.held_out_auroc)}; "
            f"with the configured calibration {fmt(fit.configured_auroc)}."
        )
        rows = [[f"{r.low:.1f}–{r.high:.1f}", str(r.questions), fmt(r.predicted), fmt(r.observed)] for r in fit.reliability]
        out += ["", table(["confidence", "questions", "predicted", "right"], rows, markdown), ""]
    return "\n".join(out).rstrip()
