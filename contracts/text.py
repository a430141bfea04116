"""Characters that make a name read differently from what it is: bidi overrides and isolates
(U+202A-202E, U+2066-2069) and control characters. `报告\u202e0fdp.exe` shows as `报告exe.pdf0`.

Names, titles and file names that people type for others to read refuse them; wherever text is
shown (pages, CLI tables), `shown` spells each one out as `[U+202E]`, so text stored before the
refusal, or in free text where newlines belong, cannot disguise itself.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# Keys whose values are names (a milestone's or task's title, an indicator's name and unit, an
# evidence file's name, a unit's name, a document number): no hidden characters in them.
NAME_KEYS = frozenset({"title", "name", "unit", "document_no", "task_title"})
NAME_LIST_KEYS = frozenset({"aliases"})  # a unit's other names
LAYOUT = frozenset("\n\t")  # free text keeps its line breaks and tabs when shown


def is_hidden(ch: str) -> bool:
    return ch in BIDI_CONTROLS or unicodedata.category(ch) == "Cc"


def hidden_in(text: str) -> list[str]:
    """The hidden characters of `text`, each once, in order."""
    return list(dict.fromkeys(ch for ch in text if is_hidden(ch)))


def code(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def shown(text: str, keep: frozenset[str] = LAYOUT) -> str:
    """`text` with each hidden character (but line breaks and tabs) written out as `[U+202E]`."""
    if not any(is_hidden(ch) and ch not in keep for ch in text):
        return text
    return "".join(f"[{code(ch)}]" if is_hidden(ch) and ch not in keep else ch for ch in text)


def refusal(found: list[str]) -> str:
    """Why a name with `found` in it is refused, Chinese first."""
    codes = "、".join(code(ch) for ch in found)
    return (
        f"含有不可见的控制字符 {codes}，会让显示的文字与实际内容不同，请删除后再提交 "
        f"(holds the invisible control character(s) {codes.replace('、', ', ')}, which make a name read "
        "differently from what it is: remove them)"
    )


def hidden_in_names(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], list[str]]]:
    """(path, hidden characters) of every name in a JSON-like value (dicts, lists, strings)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and key in NAME_KEYS:
                found = hidden_in(item)
                if found:
                    yield (*path, key), found
            elif isinstance(item, list) and key in NAME_LIST_KEYS:
                for i, name in enumerate(item):
                    if isinstance(name, str) and hidden_in(name):
                        yield (*path, key, i), hidden_in(name)
            else:
                yield from hidden_in_names(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from hidden_in_names(item, (*path, i))
