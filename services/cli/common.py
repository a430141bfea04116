"""What the HTTP commands share: their options, one line for an error, JSON or human output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from services.cli.client import ApiError

P = ParamSpec("P")
R = TypeVar("R")

Token = Annotated[str | None, typer.Option("--token", help="bearer token [env POLICYFLOW_TOKEN, config file]")]
AsJson = Annotated[bool, typer.Option("--json", help="print the service's JSON answer")]
Key = Annotated[str | None, typer.Option("--idempotency-key", help="reuse to retry safely (default: a new one)")]
Assignment = Annotated[str, typer.Argument(help="assignment id, e.g. cq-2022-79.t14.yuzhong")]

LIGHTS = {"none": "green", "blue": "blue", "yellow": "yellow", "red": "red"}
DONE_STAGES = {"completed": "✓ completed", "cancelled": "✗ cancelled"}


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn service refusals and bad input into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            typer.echo(f"error: {exc}", err=True)  # plain: one line, never wrapped
            raise typer.Exit(1) from exc

    return wrapper


def console() -> Console:
    """Made per call, so the terminal width (COLUMNS) is read when printing."""
    return Console()


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        human(data)


def light(level: str) -> str:
    colour = LIGHTS.get(level, "white")
    return f"[{colour}]●[/{colour}] {level}"


def stage_text(stage: str) -> str:
    return f"[dim]{DONE_STAGES[stage]}[/dim]" if stage in DONE_STAGES else stage


def deadline_text(d: dict[str, Any] | None) -> str:
    return f"{d['due']} {d['kind']}" if d else "-"


def assignments_table(page: dict[str, Any], title: str) -> None:
    if not page["items"]:
        console().print(f"{title}: no assignments match" + (f" (of {page['total']})" if page["total"] else ""))
        return
    table = Table(title=f"{title} ({len(page['items'])} of {page['total']})", title_justify="left")
    for col in ("assignment", "task", "title", "unit", "role", "stage", "year", "next deadline", "%", "overdue"):
        table.add_column(col, overflow="fold")
    for i in page["items"]:
        table.add_row(
            i["assignment_id"],
            str(i["task_no"]),
            i.get("task_title", "")[:30],
            i["unit_id"],
            i["role"],
            stage_text(i["stage"]),
            str(i["year"]),
            deadline_text(i.get("next_deadline")),
            f"{i.get('percent', 0):g}",
            light(i["overdue_level"]),
        )
    console().print(table)


def accepted(data: dict[str, Any]) -> None:
    note = " (already done earlier: replayed, nothing new)" if data.get("replayed") else ""
    console().print(f"{data['assignment_id']}: now {stage_text(data['stage'])} for {data['year']}{note}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ApiError(0, f"cannot read {path}: {exc}") from exc
