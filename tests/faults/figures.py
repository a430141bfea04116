"""The figures a fault test prints: to stdout (shown with `pytest -s`), kept for the report."""

from __future__ import annotations

from collections.abc import Iterable


def say(line: str = "") -> None:
    """Figures go to stdout (shown with `pytest -s`) and are kept for the report."""
    print(line, flush=True)


def table(title: str, rows: Iterable[tuple[str, object]]) -> None:
    say(f"\n== {title}")
    for name, value in rows:
        say(f"  {name:<52} {value}")
