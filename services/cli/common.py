"""What the HTTP commands share: their options, one line for an error, JSON or human output, and the
words people read (Chinese by default; `policyflow --lang en` or POLICYFLOW_LANG=en for English).

With `--json`, the answer is the service's JSON on stdout and an error is one JSON line on stderr,
`{"error": "...", "status": 409}` (status 0: the service was not reached or the input was refused
before sending), with exit code 1, as without it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table

from contracts import labels
from contracts.labels import Lang
from contracts.text import shown as spelled_out
from services.cli.errors import ApiError

P = ParamSpec("P")
R = TypeVar("R")

Token = Annotated[str | None, typer.Option("--token", help="bearer token [env POLICYFLOW_TOKEN, saved token]")]
AsJson = Annotated[
    bool, typer.Option("--json", help='print the JSON answer; an error is {"error": ..., "status": ...} on stderr')
]
Key = Annotated[str | None, typer.Option("--idempotency-key", help="reuse to retry safely (default: a new one)")]
Assignment = Annotated[str, typer.Argument(help="assignment id, e.g. cq-2022-79.t14.yuzhong")]

LIGHTS = {"none": "green", "blue": "blue", "yellow": "yellow", "red": "red"}
DONE_STAGES = {"completed": "✓", "cancelled": "✗"}
_LANG: list[Lang] = []  # set by `policyflow --lang`; else POLICYFLOW_LANG; else Chinese


def escape(value: str) -> str:
    """Text from people, safe in rich markup and with bidi overrides and control characters
    spelled out (contracts/text.py), so a name cannot pose as another in a table."""
    return rich_escape(spelled_out(value))


def set_lang(value: str | None) -> None:
    _LANG[:] = [value] if value in ("zh", "en") else []  # type: ignore[list-item]


def lang() -> Lang:
    if _LANG:
        return _LANG[0]
    return "en" if os.environ.get("POLICYFLOW_LANG", "").lower().startswith("en") else "zh"


def t(zh: str, en: str) -> str:
    """The words in the language asked for."""
    return zh if lang() == "zh" else en


def fail(exc: ApiError, as_json: bool) -> typer.Exit:
    """Say what went wrong (one plain line, or one JSON line) on stderr; the exit to raise."""
    if as_json:
        sys.stderr.write(json.dumps({"error": exc.detail, "status": exc.status}, ensure_ascii=False) + "\n")
    else:
        typer.echo(f"error: {exc}", err=True)  # plain: one line, never wrapped
    return typer.Exit(1)


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn service refusals and bad input into one line on stderr (JSON with --json) and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            raise fail(exc, bool(kwargs.get("as_json"))) from exc

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
    return f"[{colour}]●[/{colour}] {labels.level(level, lang())}"


def stage_text(stage: str) -> str:
    words = labels.stage(stage, lang())
    return f"[dim]{DONE_STAGES[stage]} {words}[/dim]" if stage in DONE_STAGES else words


def deadline_text(d: dict[str, Any] | None) -> str:
    """`2026-12-01 2026年度计划`: the date and what is due, never the raw key."""
    return f"{d['due']} {labels.deadline(d['key'], lang())}" if d else "-"


def assignments_table(page: dict[str, Any], title: str) -> None:
    if not page["items"]:
        total = f" ({t('共', 'of ')}{page['total']})" if page["total"] else ""
        console().print(f"{title}: {t('没有符合条件的任务', 'no assignments match')}{total}")
        return
    shown = t(f"{len(page['items'])} / 共 {page['total']}", f"{len(page['items'])} of {page['total']}")
    table = Table(title=f"{title} ({shown})", title_justify="left")
    heads = t(
        "任务编号 任务 名称 单位 分工 阶段 年度 下一期限 完成% 督办",
        "assignment task title unit role stage year next-deadline % overdue",
    )
    for col in heads.split():
        table.add_column(col.replace("-", " "), overflow="fold")
    for i in page["items"]:
        table.add_row(
            i["assignment_id"],
            str(i["task_no"]),
            escape(i.get("task_title", "")[:30]),
            i["unit_id"],
            labels.role(i["role"], lang()),
            stage_text(i["stage"]),
            str(i["year"]),
            deadline_text(i.get("next_deadline")),
            f"{i.get('percent', 0):g}",
            light(i["overdue_level"]),
        )
    console().print(table)


def accepted(data: dict[str, Any]) -> None:
    stage, year = stage_text(data["stage"]), data["year"]
    if data.get("replayed"):
        note = t("（此前已办理，本次未重复记录）", " (already done earlier: replayed, nothing new)")
    else:
        note = ""
    console().print(f"{data['assignment_id']}: {t(f'{year}年度 现为 {stage}', f'now {stage} for {year}')}{note}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ApiError(0, f"cannot read {path}: {exc}") from exc


def read_text(path: Path) -> str:
    """A long text from a file (a narrative, findings): UTF-8, or GB18030 as Chinese Windows saves it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ApiError(0, f"cannot read {path}: {exc.strerror}") from exc
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding).strip()
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ApiError(0, f"{path} is not text (save it as UTF-8)")
    if not text:
        raise ApiError(0, f"{path} is empty")
    return text


def text_or_file(text: str | None, path: Path | None, option: str, required: bool = True) -> str:
    """The text given inline (`--narrative`) or from a file (`--narrative-file`): one of the two."""
    if text is not None and path is not None:
        raise ApiError(0, f"give --{option} or --{option}-file, not both")
    if path is not None:
        return read_text(path)
    if text is None and required:
        raise ApiError(0, f"give --{option} TEXT, or --{option}-file FILE for a long text")
    return text or ""
