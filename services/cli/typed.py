"""Options as people type them: full-width punctuation and digits (a Chinese input method gives
`惠及居民：3000：户`, `占比＝70`, `２０２６年6月30日`), numbers with their unit glued on (`3000户`,
`70%`), dates written the Chinese way. Names and titles are kept exactly as typed.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any
from zoneinfo import ZoneInfo

from contracts.indicators import INDICATOR_ID_PATTERN
from services.cli.errors import ApiError

SHANGHAI = ZoneInfo("Asia/Shanghai")
_SEPARATORS = {"：": ":", "＝": "=", "，": ",", "－": "-", "／": "/", "．": "."}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(.*?)\s*$")
_DATE = re.compile(r"^\s*(\d{4})\s*(?:[-/.年])\s*(\d{1,2})\s*(?:[-/.月])\s*(\d{1,2})\s*日?\s*$")
_PERIOD = re.compile(r"^\s*(\d{4})\s*(?:-|年)?\s*(?:Q|第)\s*([1-4一二三四])\s*(?:季度)?\s*$", re.IGNORECASE)
_QUARTER_WORDS = {"一": "1", "二": "2", "三": "3", "四": "4"}


def halfwidth(text: str) -> str:
    """Full-width digits, letters and separators as their ASCII forms (the rest as typed)."""
    out = []
    for ch in text:
        if ch in _SEPARATORS:
            out.append(_SEPARATORS[ch])
        elif "\uff01" <= ch <= "\uff5e":  # the full-width forms of ASCII
            out.append(unicodedata.normalize("NFKC", ch))
        else:
            out.append(ch)
    return "".join(out)


def number(text: str, what: str, unit_allowed: bool = False) -> tuple[float, str]:
    """`3000`, `３０００`, `3,000`, `70%`, `3000户`: the number and what follows it (its unit)."""
    m = _NUMBER.match(halfwidth(text).replace(",", ""))
    if m is None or (m.group(2) and not unit_allowed):
        raise ApiError(0, f"{what}: {text!r} is not a number")
    return float(m.group(1)), m.group(2)


def whole(text: str, what: str) -> int:
    value, _ = number(text, what)
    if value != int(value):
        raise ApiError(0, f"{what}: {text!r} is not a whole number")
    return int(value)


def date(text: str, what: str) -> dt.date:
    """`2026-06-30`, `2026/6/30`, `2026年6月30日`, in full-width digits too."""
    m = _DATE.match(halfwidth(text))
    try:
        if m is None:
            raise ValueError(text)
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise ApiError(0, f"{what}: {text.strip()!r} is not a date; write it like 2026-06-30") from None


def period(text: str) -> str:
    """`2026-Q3` from `2026-q3`, `2026Q3`, `２０２６－Ｑ３` or `2026年第三季度`."""
    m = _PERIOD.match(halfwidth(text))
    if m is None:
        raise ApiError(0, f"--period {text!r}: write the quarter like 2026-Q3")
    return f"{m.group(1)}-Q{_QUARTER_WORDS.get(m.group(2), m.group(2))}"


def _split(text: str, parts: int) -> list[str]:
    """Split on `:` or `：` into at most `parts` pieces (a title may hold more colons)."""
    return [p.strip() for p in re.split(r"[:：]", text, maxsplit=parts - 1)]


def milestone(text: str) -> dict[str, str]:
    """`2026-06-30:评估` or `2026-06-30：评估`."""
    due, *rest = _split(text, 2)
    if not rest or not rest[0]:
        raise ApiError(0, f"--milestone {text!r}: write it as YYYY-MM-DD:title")
    return {"due": date(due, f"--milestone {text!r}").isoformat(), "title": rest[0]}


def indicator(text: str) -> dict[str, Any]:
    """`name:target[:unit]`; the unit may be glued to the target (`惠及居民：3000户`); a name that is an
    indicator id (`green_building_share:92:%`) names the programme's declared indicator."""
    parts = _split(text, 3)
    if len(parts) < 2 or not parts[0]:
        raise ApiError(0, f"--indicator {text!r}: write it as name:target or name:target:unit")
    target, glued = number(parts[1], f"--indicator {text!r}: the target", unit_allowed=True)
    unit = parts[2] if len(parts) == 3 else glued
    if len(parts) == 3 and glued:
        raise ApiError(0, f"--indicator {text!r}: the target {parts[1]!r} is not a number")
    return {**_declared(parts[0]), "target": target, "unit": unit}


def value(text: str) -> dict[str, Any]:
    """`name=number` or `name＝number`; a unit after the number is allowed and dropped (`占比=70%`)."""
    name, sep, raw = re.sub("＝", "=", text).rpartition("=")
    if not sep or not name.strip():
        raise ApiError(0, f"--value {text!r}: write it as name=number")
    amount, _ = number(raw, f"--value {text!r}: write it as name=number", unit_allowed=True)
    return {**_declared(name.strip()), "value": amount}


def _declared(name: str) -> dict[str, str]:
    """A name written as a programme's indicator id (`green_building_share`) names that indicator;
    any other name is a free-text one."""
    return {"id": name, "name": name} if re.fullmatch(INDICATOR_ID_PATTERN, name) else {"name": name}


def today() -> dt.date:
    """Today in China, the calendar the deadlines are kept in."""
    return dt.datetime.now(SHANGHAI).date()


def past_milestones(milestones: list[dict[str, Any]], on: dt.date) -> list[dict[str, Any]]:
    return [m for m in milestones if isinstance(m.get("due"), str) and m["due"] < on.isoformat()]
