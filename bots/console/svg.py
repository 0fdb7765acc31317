"""Charts drawn in the page: columns per day as inline SVG (no script, no library, no request)."""

from __future__ import annotations

from datetime import date
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#dc2626", "#d97706", "#059669", "#7c3aed", "#0891b2", "#6b7280")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 200, 40, 24, 10


def columns(days: list[date], series: dict[str, list[float | None]], percent: bool, title: str) -> Markup:
    """Stacked columns, one per day, one colour per series, with a legend; ``percent`` reads the
    values as fractions. An empty day (None) draws nothing rather than a misleading zero."""
    totals = [sum(v[i] or 0 for v in series.values()) for i in range(len(days))]
    top = 1.0 if percent else max([*totals, 1])
    if percent:
        top = max([*totals, 0.05])
        top = min(1.0, top * 1.1) if top < 1 else top
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(days), 1)
    bar = max(step * 0.7, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 22 * ((len(series) + 2) // 3)}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH}" y2="{TOP + plot_h}" stroke="#9ca3af"/>',
    ]
    for tick in (0.5, 1.0):
        y = TOP + plot_h * (1 - tick)
        label = f"{tick * top:.0%}" if percent else f"{tick * top:g}"
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{label}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}" stroke="#e5e7eb"/>')
    for i, day in enumerate(days):
        x = LEFT + i * step + (step - bar) / 2
        base = TOP + plot_h
        for (name, values), colour in zip(series.items(), PALETTE * 4, strict=False):
            value = values[i]
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            shown = f"{value:.0%}" if percent else f"{value:g}"
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{day.isoformat()} {escape(name)}: {shown}</title></rect>"
            )
        if len(days) <= 16 or i % max(len(days) // 8, 1) == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" class="tick">{day:%m-%d}</text>')
    for n, (name, colour) in enumerate(zip(series, PALETTE * 4, strict=False)):
        lx, ly = LEFT + (n % 3) * 200, HEIGHT + 14 + 22 * (n // 3)
        parts.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="{ly}" class="legend">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
