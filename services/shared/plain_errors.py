"""Request validation errors in plain words: what the field must be, never pydantic's jargon.

pydantic says "String should match pattern '^(20\\d\\d)-Q([1-4])$'" or "Input should be a valid
integer"; the officials who read a refusal need "must look like 2026-Q4" and "must be a whole
number". Each message reads after the field's name: `period must look like 2026-Q4`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from contracts import labels


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _choices(ctx: Mapping[str, Any]) -> str:
    return str(ctx.get("expected", "")).replace("'", "")


def _length(ctx: Mapping[str, Any], at: str, what: str) -> str:
    n = int(ctx.get(f"{at}_length", 0))
    if at == "min" and n == 1:
        return "must not be empty" if what == "characters" else "must have at least one entry"
    bound = "at least" if at == "min" else "at most"
    return f"must have {bound} {n} {what}" if what == "entries" else f"must be {bound} {n} characters long"


def _value_error(e: Mapping[str, Any]) -> str:
    text = str(e.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return text or "is not valid"


_OBJECT = "must be a JSON object, like {...}"
_WORDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda _: "is required",
    "extra_forbidden": lambda _: "is not a field this request takes (check its spelling, or leave it out)",
    "string_pattern_mismatch": lambda ctx: labels.pattern(str(ctx.get("pattern", "")), "en"),
    "less_than_equal": lambda ctx: f"must be at most {_num(ctx.get('le'))}",
    "greater_than_equal": lambda ctx: f"must be at least {_num(ctx.get('ge'))}",
    "less_than": lambda ctx: f"must be less than {_num(ctx.get('lt'))}",
    "greater_than": lambda ctx: f"must be more than {_num(ctx.get('gt'))}",
    "string_too_short": lambda ctx: _length(ctx, "min", "characters"),
    "string_too_long": lambda ctx: _length(ctx, "max", "characters"),
    "too_short": lambda ctx: _length(ctx, "min", "entries"),
    "too_long": lambda ctx: _length(ctx, "max", "entries"),
    "int_parsing": lambda _: "must be a whole number",
    "int_type": lambda _: "must be a whole number",
    "int_from_float": lambda _: "must be a whole number",
    "float_parsing": lambda _: "must be a number",
    "float_type": lambda _: "must be a number",
    "finite_number": lambda _: "must be an ordinary number (not NaN or infinity)",
    "bool_parsing": lambda _: "must be true or false",
    "bool_type": lambda _: "must be true or false",
    "literal_error": lambda ctx: f"must be one of: {_choices(ctx)}",
    "enum": lambda ctx: f"must be one of: {_choices(ctx)}",
    "date_parsing": lambda _: "must be a date like 2026-06-30",
    "date_from_datetime_parsing": lambda _: "must be a date like 2026-06-30",
    "date_from_datetime_inexact": lambda _: "must be a date like 2026-06-30",
    "date_type": lambda _: "must be a date like 2026-06-30",
    "datetime_parsing": lambda _: "must be a date and time like 2026-06-30T09:00:00+08:00",
    "datetime_from_date_parsing": lambda _: "must be a date and time like 2026-06-30T09:00:00+08:00",
    "datetime_type": lambda _: "must be a date and time like 2026-06-30T09:00:00+08:00",
    "string_type": lambda _: "must be text",
    "list_type": lambda _: "must be a list, like [...]",
    "dict_type": lambda _: _OBJECT,
    "model_type": lambda _: _OBJECT,
    "model_attributes_type": lambda _: _OBJECT,
    "json_invalid": lambda _: "is not valid JSON",
    "json_type": lambda _: "is not valid JSON",
}


def field_of(loc: tuple[Any, ...]) -> str:
    """`evidence.0.sha256`; the body itself is `body`."""
    return ".".join(str(part) for part in loc if part != "body") or "body"


def message_of(error: Mapping[str, Any]) -> str:
    """One error's words, to read after the field's name."""
    kind = str(error.get("type", ""))
    if kind in ("value_error", "assertion_error"):
        return _value_error(error)
    words = _WORDS.get(kind)
    return words(error.get("ctx") or {}) if words else "has a value that is not accepted here"


def plain(errors: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    """`[{field, message}]`, one per error, in plain words."""
    return [{"field": field_of(tuple(e.get("loc", ()))), "message": message_of(e)} for e in errors]


def summary(errors: list[dict[str, str]], most: int = 3) -> str:
    """The answer's `detail`: the first few errors, each as `field message`."""
    if not errors:
        return "the request is not valid"
    said = "; ".join(f"{e['field']} {e['message']}" for e in errors[:most])
    more = len(errors) - most
    return said + (f" (and {more} more: see errors)" if more > 0 else "")
