"""The dashboard's Jinja2 environment: templates, filters and the labels every page uses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from contracts import labels, text
from services.progress import charts
from services.progress import dashboard_queries as q
from services.progress import dashboard_sources as src

OVERDUE_CHOICES = {"none": "正常", "any": "任一督办", "blue": "蓝色督办", "yellow": "黄色督办", "red": "红色督办"}
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def cn_time(value: Any) -> str:
    if isinstance(value, str):
        text: str = value
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            return text
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def file_size(size: int) -> str:
    if size < 1024:
        return f"{size} 字节"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def _shown(value: Any) -> Any:
    """Every value a page prints: a bidi override or control character in text from people is
    spelled out (contracts/text.py), so a name cannot pose as another; markup we built is left."""
    return text.shown(value) if type(value) is str else value


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown,
    )
    env.filters["cn_time"] = cn_time
    env.filters["rate"] = charts.rate_text
    env.filters["file_size"] = file_size
    env.globals.update(
        STAGES=q.STAGE_LABELS,
        OVERDUE=q.OVERDUE_LABELS,
        ROLES=q.ROLE_LABELS,
        LIGHTS=q.LIGHT_LABELS,
        OVERDUE_CHOICES=OVERDUE_CHOICES,
        EVENT_LABELS=src.EVENT_LABELS,
        group_label=q.group_label,
        L=labels,
    )
    return env


templates = Jinja2Templates(env=_environment())
