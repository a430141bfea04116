"""Inline SVG drawn on the server: one horizontal stacked bar per unit, no JavaScript.

Each bar shows a unit's assignments by traffic light (done, on time, not accepted, blue, yellow,
red, cancelled), scaled to the unit with the most assignments; the on-time rate is printed at its end.
Every piece of text is escaped; each segment carries a <title> for the browser's tooltip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

from contracts import text
from services.progress.dashboard_queries import LIGHT_LABELS, UnitStats

SEGMENTS: tuple[tuple[str, str], ...] = (
    ("done", "#2e7d32"),
    ("green", "#66bb6a"),
    ("grey", "#b0b7bf"),
    ("blue", "#1e88e5"),
    ("yellow", "#fbc02d"),
    ("red", "#e53935"),
    ("cancelled", "#d5dae0"),
)
LABEL_W, BAR_W, RATE_W, ROW_H, BAR_H, TOP = 170, 440, 64, 20, 14, 28


def _count(u: UnitStats, key: str) -> int:
    return {
        "done": u.completed,
        "green": u.green,
        "grey": u.not_started,
        "blue": u.blue,
        "yellow": u.yellow,
        "red": u.red,
        "cancelled": u.cancelled,
    }[key]


def rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f}%"


def _legend() -> list[str]:
    out, x = [], 10
    for key, colour in SEGMENTS:
        out.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 16}" y="16" class="legend">{escape(LIGHT_LABELS[key])}</text>')
        x += 16 + 14 * len(LIGHT_LABELS[key]) + 12
    return out


def unit_bars(stats: Sequence[UnitStats], names: Mapping[str, str], title: str = "各单位任务状态与按期率") -> Markup:
    """The chart as an <svg> element, ready to drop into a page."""
    width = LABEL_W + BAR_W + RATE_W
    height = TOP + ROW_H * max(len(stats), 1) + 6
    scale = max((u.total for u in stats), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="unit-chart" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        *_legend(),
    ]
    if not stats:
        parts.append(f'<text x="{LABEL_W}" y="{TOP + 14}" class="empty">暂无数据</text>')
    for i, u in enumerate(stats):
        y = TOP + i * ROW_H
        name = text.shown(names.get(u.unit_id, u.unit_id))
        parts.append(
            f'<g class="bar" data-unit="{escape(u.unit_id)}">'
            f'<text x="{LABEL_W - 6}" y="{y + BAR_H - 2}" text-anchor="end" class="label">{escape(name)}</text>'
        )
        x = float(LABEL_W)
        for key, colour in SEGMENTS:
            n = _count(u, key)
            if n <= 0:
                continue
            w = BAR_W * n / scale
            tip = f"{escape(name)} · {escape(LIGHT_LABELS[key])} {n}"
            parts.append(
                f'<rect class="seg seg-{key}" data-count="{n}" x="{x:.1f}" y="{y}" width="{w:.1f}" '
                f'height="{BAR_H}" fill="{colour}"><title>{tip}</title></rect>'
            )
            x += w
        rate = rate_text(u.on_time_rate)
        parts.append(f'<text x="{x + 6:.1f}" y="{y + BAR_H - 2}" class="rate">{escape(rate)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))
