"""Inline SVG drawn on the server, no JavaScript: the same pictures on the dashboard and in the bulletin's PDF.

unit_bars: per unit its assignments by traffic light, scaled to the unit with the most, the on-time
rate at the bar's end; group_bars: per task group the period's deadlines by outcome; monthly: the
escalations raised and the on-time rate per month; indicator_bars: each indicator against its year's
target. Every piece of text is escaped; each mark carries a <title> for the browser's tooltip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

from contracts import text
from contracts.bulletin import GroupFigures, MonthFigures
from contracts.figures import IndicatorFigures, YearFigure
from services.progress.dashboard_queries import LIGHT_LABELS, UnitStats, group_label

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
    parts = [*_open("unit-chart", width, height, title), *_legend()]
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
    return _closed(parts)


# ---- the bulletin's charts (also on the dashboard): one function per picture -------------------------

OUTCOMES: tuple[tuple[str, str, str], ...] = (
    ("on_time", "按期办理", "#2e7d32"),
    ("late", "逾期办理", "#fbc02d"),
    ("missed", "逾期未办", "#e53935"),
    ("pending", "未到期", "#b0b7bf"),
)
ESCALATION_COLOURS: tuple[tuple[str, str, str], ...] = (
    ("blue", "蓝色督办", "#1e88e5"),
    ("yellow", "黄色督办", "#fbc02d"),
    ("red", "红色督办", "#e53935"),
)


# The same sizes as presentation attributes, for renderers that do not apply the page's CSS inside an
# <svg> (WeasyPrint); the dashboard's stylesheet (templates/_charts.css) says the same.
TEXT_STYLE = {
    "legend": ' font-size="11" fill="#52606d"',
    "axis": ' font-size="10" fill="#7b8794"',
    "rate": ' font-size="11" fill="#1f2933"',
    "empty": ' font-size="12" fill="#7b8794"',
    "label": ' font-size="12" fill="#1f2933"',
}
FONTS = "Noto Sans CJK SC, WenQuanYi Micro Hei, Microsoft YaHei, sans-serif"


def _closed(parts: list[str]) -> Markup:
    """The parts as one <svg>, each text given its size and colour as attributes."""
    body = "".join(parts) + "</svg>"
    for cls, attrs in TEXT_STYLE.items():
        body = body.replace(f'class="{cls}">', f'class="{cls}"{attrs}>')
    return Markup(body)


def _open(chart_id: str, width: float, height: float, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" class="chart" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'font-family="{FONTS}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]


def _key_width(items: Sequence[tuple[str, str, str]]) -> float:
    return sum(16 + 12 * len(label) + 14 for _, label, _ in items) - 14


def _key(items: Sequence[tuple[str, str, str]], y: float = 6, x: float = 10) -> list[str]:
    out = []
    for _, label, colour in items:
        out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 16:.0f}" y="{y + 10:.0f}" class="legend">{escape(label)}</text>')
        x += 16 + 12 * len(label) + 14
    return out


def group_bars(groups: Sequence[GroupFigures], title: str = "各任务组本期应办事项办理情况") -> Markup:
    """Per task group one bar of the period's deadlines by outcome, the on-time rate at its end."""
    label_w, bar_w, rate_w, row_h, bar_h, top = 190, 420, 60, 24, 16, 28
    width, height = label_w + bar_w + rate_w, top + row_h * max(len(groups), 1) + 6
    scale = max((sum(getattr(g.deadlines, k) for k, _, _ in OUTCOMES) for g in groups), default=0) or 1
    parts = [*_open("group-chart", width, height, title), *_key(OUTCOMES)]
    if not groups:
        parts.append(f'<text x="{label_w}" y="{top + 14}" class="empty">暂无数据</text>')
    for i, g in enumerate(groups):
        y = top + i * row_h
        name = text.shown((group_label(g.group_no) if g.group_no is not None else "") + g.title)
        short = name if len(name) <= 13 else name[:12] + "…"
        parts.append(
            f'<g class="bar" data-group="{g.group_no if g.group_no is not None else ""}"><title>{escape(name)}</title>'
            f'<text x="{label_w - 6}" y="{y + bar_h - 3}" text-anchor="end" class="label">{escape(short)}</text>'
        )
        x = float(label_w)
        for key, label, colour in OUTCOMES:
            n = getattr(g.deadlines, key)
            if n <= 0:
                continue
            w = bar_w * n / scale
            parts.append(
                f'<rect class="seg seg-{key}" data-count="{n}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                f'fill="{colour}"><title>{escape(name)} · {escape(label)} {n}</title></rect>'
            )
            x += w
        rate = rate_text(g.deadlines.rate)
        parts.append(f'<text x="{x + 6:.1f}" y="{y + bar_h - 3}" class="rate">{escape(rate)}</text></g>')
    return _closed(parts)


def monthly(months: Sequence[MonthFigures], title: str = "按月按期办理率与督办次数") -> Markup:
    """Per month a column of escalations raised (stacked by colour, left scale) and the on-time rate
    of the deadlines due that month (a line, right scale 0-100 %)."""
    left, right, top, plot_h, bottom = 40, 44, 38, 150, 24
    col_w = 56 if len(months) <= 4 else 40
    width, height = left + col_w * max(len(months), 1) + right, top + plot_h + bottom
    most = max((sum(m.escalations.values()) for m in months), default=0)
    step = max(1, -(-most // 4))
    scale = step * 4
    items = (*ESCALATION_COLOURS, ("rate", "按期率", "#1f2933"))
    # The key ends where the plot ends: a phone shows the latest months first (the page scrolls the
    # chart to its right end), and the key with them.
    key_x = max(10.0, width - right - _key_width(items))
    parts = [*_open("month-chart", width, height, title), *_key(items, x=key_x)]
    base = top + plot_h
    for k in range(5):  # the grid: escalations on the left, the rate on the right
        y = base - plot_h * k / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">{step * k}</text>')
        parts.append(f'<text x="{width - right + 4}" y="{y + 4:.1f}" class="axis">{25 * k}%</text>')
    points = []
    for i, m in enumerate(months):
        x0 = left + i * col_w
        label = f"{int(m.month[5:])}月"
        parts.append(f'<g class="month" data-month="{m.month}">')
        y = float(base)
        for key, name, colour in ESCALATION_COLOURS:
            n = m.escalations.get(key, 0)
            if n <= 0:
                continue
            h = plot_h * n / scale
            y -= h
            parts.append(
                f'<rect class="seg seg-{key}" data-count="{n}" x="{x0 + col_w * 0.25:.1f}" y="{y:.1f}" '
                f'width="{col_w * 0.5:.1f}" height="{h:.1f}" fill="{colour}"><title>{label} {name} {n}</title></rect>'
            )
        mid = x0 + col_w / 2
        parts.append(f'<text x="{mid:.1f}" y="{base + 16}" text-anchor="middle" class="label">{label}</text>')
        rate = m.deadlines.rate
        if rate is not None:
            cx, cy = x0 + col_w / 2, base - plot_h * rate
            points.append(f"{cx:.1f},{cy:.1f}")
            tip = f"{label} 按期率 {rate_text(rate)}（到期 {m.deadlines.decided} 项）"
            parts.append(
                f'<circle class="rate" data-rate="{rate:.4f}" cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="#1f2933">'
                f"<title>{escape(tip)}</title></circle>"
                f'<text x="{cx:.1f}" y="{cy - 7:.1f}" text-anchor="middle" class="rate">{rate_text(rate)}</text>'
            )
        parts.append("</g>")
    if len(points) > 1:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#1f2933" stroke-width="1.5"/>')
    return _closed(parts)


def _number(value: float) -> str:
    return f"{value:g}"


def indicator_bars(rows: Sequence[tuple[IndicatorFigures, YearFigure | None]], year: int) -> Markup:
    """Per indicator its city-wide value of `year` as a bar against the year's target (a mark) and
    the goal (the bar's full length when it is the largest)."""
    title = f"{year} 年指标进展（对照年度目标）"
    label_w, bar_w, note_w, row_h, bar_h, top = 180, 330, 160, 28, 14, 28
    width, height = label_w + bar_w + note_w, top + row_h * max(len(rows), 1) + 6
    met, unmet, target_c = "#2e7d32", "#f57c00", "#1f2933"
    key = (("met", "已达年度目标", met), ("unmet", "未达年度目标", unmet), ("target", "年度目标", target_c))
    parts = [*_open("indicator-chart", width, height, title), *_key(key)]
    if not rows:
        parts.append(f'<text x="{label_w}" y="{top + 14}" class="empty">本方案未声明指标</text>')
    for i, (ind, y_fig) in enumerate(rows):
        y = top + i * row_h
        value = None if y_fig is None else y_fig.value
        target = None if y_fig is None else y_fig.target
        scale = max(v for v in (value, target, ind.goal, 1e-9) if v is not None)
        name = text.shown(ind.name)
        short = name if len(name) <= 13 else name[:12] + "…"
        parts.append(
            f'<g class="indicator" data-indicator="{escape(ind.id)}"><title>{escape(name)}</title>'
            f'<text x="{label_w - 6}" y="{y + bar_h - 2}" text-anchor="end" class="label">{escape(short)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="{bar_h}" fill="#eef2f6"/>'
        )
        if value is not None:
            w = bar_w * max(value, 0) / scale
            colour = met if y_fig is not None and y_fig.met else unmet
            parts.append(
                f'<rect class="value" data-value="{_number(value)}" x="{label_w}" y="{y}" width="{w:.1f}" '
                f'height="{bar_h}" fill="{colour}">'
                f"<title>{escape(name)} {_number(value)}{escape(ind.measure)}</title></rect>"
            )
        if target is not None:
            tx = label_w + bar_w * target / scale
            parts.append(
                f'<line class="target" data-target="{_number(target)}" x1="{tx:.1f}" y1="{y - 3}" x2="{tx:.1f}" '
                f'y2="{y + bar_h + 3}" stroke="{target_c}" stroke-width="2"/>'
            )
        shown = "未填报" if value is None else _number(value) + ind.measure
        aim = "" if target is None else f" / 目标 {_number(target)}"
        parts.append(
            f'<text x="{label_w + bar_w + 6}" y="{y + bar_h - 2}" class="rate">{escape(shown + aim)}</text></g>'
        )
    return _closed(parts)
