"""The `--json` convention for the local commands (programme, contracts, docs, audit, admin), whose
errors are not a service's refusal and whose exit codes (1, 2) say different things.

With `--json` the answer is one JSON document on stdout; an error is one line
`{"error": "...", "status": 0}` on stderr (status: the HTTP status when a service refused, else 0),
with the command's usual non-zero exit code. A negative verdict (a tampered bundle, stale
documents) is both: the verdict as data on stdout, and its error line on stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer


def error_line(message: str, status: int = 0, **more: Any) -> None:
    sys.stderr.write(json.dumps({"error": message, "status": status, **more}, ensure_ascii=False) + "\n")


def refuse(message: str, as_json: bool, code: int, status: int = 0, **more: Any) -> typer.Exit:
    """Say what went wrong on stderr (`error: ...`, or the JSON line); the exit to raise."""
    if as_json:
        error_line(message, status, **more)
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def answer(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
