"""Changes during the year from the command line: an extension asked for and decided (延期),
a supervisor's 催办 to one assignment or to every one a filter matches, and 办结销号.

Each is one row of the command table (contracts/command_table.py) sent to the progress service;
the bulk 催办 previews its count first and shows progress while it is sent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli import typed
from services.cli.client import Client, Config
from services.cli.common import (
    AsJson,
    Assignment,
    Key,
    Token,
    accepted,
    console,
    emit,
    escape,
    handled,
    t,
    text_or_file,
)
from services.cli.errors import ApiError

POLL_S = 0.5

extension_app = typer.Typer(no_args_is_help=True, help="Deadline extensions (延期申请与审批).")


def _post(token: str | None, key: str | None, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with Client(Config.load(token)) as c:
        data: dict[str, Any] = c.request("progress", "POST", path, json=body, idempotency_key=key)
    return data


@extension_app.command("request")
@handled
def extension_request(
    assignment: Assignment,
    deadline: Annotated[str, typer.Option(help="the deadline's key, as `show` lists it (e.g. report:2026-Q2)")],
    to: Annotated[str, typer.Option("--to", help="the new date asked for, e.g. 2026-08-03")],
    reason: Annotated[str | None, typer.Option(help="why more time is needed")] = None,
    reason_file: Annotated[Path | None, typer.Option(help="the reason, from a text file")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Departments: ask to move one of your open deadlines (延期申请)."""
    body = {
        "deadline_key": deadline.strip(),
        "new_due": typed.date(to, "--to").isoformat(),
        "reason": text_or_file(reason, reason_file, "reason"),
    }
    data = _post(token, key, f"/v1/assignments/{assignment}/extensions", body)

    def human(d: dict[str, Any]) -> None:
        accepted(d)
        console().print(t(f"延期申请第{d['n']}号已提交，等待督查人员审批", f"extension request no. {d['n']} sent"))

    emit(data, as_json, human)


@extension_app.command("decide")
@handled
def extension_decide(
    assignment: Assignment,
    n: Annotated[int, typer.Argument(help="the request's number")],
    decision: Annotated[str, typer.Argument(help="approve or refuse")],
    reason: Annotated[str | None, typer.Option(help="why (required to refuse)")] = None,
    to: Annotated[str | None, typer.Option("--to", help="approve another date than the one asked for")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Supervisors: approve or refuse extension request N (延期审批)."""
    if decision not in ("approve", "refuse"):
        raise ApiError(0, t(f"决定只能是 approve 或 refuse，而不是 {decision!r}", "decision is approve or refuse"))
    body: dict[str, Any] = {"decision": decision, "reason": reason or ""}
    if to is not None:
        body["new_due"] = typed.date(to, "--to").isoformat()
    emit(_post(token, key, f"/v1/assignments/{assignment}/extensions/{n}/decision", body), as_json, accepted)


@handled
def remind(
    assignment: Annotated[str | None, typer.Argument(help="one assignment; or none, with filters")] = None,
    message: Annotated[str, typer.Option(help="what the unit is told")] = "",
    programme: Annotated[str | None, typer.Option(help="many: programme id")] = None,
    unit: Annotated[str | None, typer.Option(help="many: unit id")] = None,
    task: Annotated[int | None, typer.Option(help="many: task number")] = None,
    stage: Annotated[str | None, typer.Option(help="many: stage")] = None,
    overdue: Annotated[str | None, typer.Option(help="many: none, blue, yellow, red, or any")] = None,
    limit: Annotated[int, typer.Option(min=1, help="many: refuse if more than this match")] = 500,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="many: only count who would be reminded")] = False,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Supervisors: 催办 one assignment, or every open one matching the filters (counted first)."""
    if not message.strip():
        raise ApiError(0, t("请用 --message 写明催办内容", "give the reminder's text with --message"))
    filters = {"programme_id": programme, "unit_id": unit, "task_no": task, "stage": stage, "overdue": overdue}
    if assignment is not None:
        if any(v is not None for v in filters.values()) or dry_run:
            raise ApiError(0, t("指定了一项任务时不能再用筛选条件", "an assignment id and filters do not go together"))
        emit(_post(token, key, f"/v1/assignments/{assignment}/reminders", {"message": message}), as_json, accepted)
        return
    if all(v is None for v in filters.values()):
        raise ApiError(0, t("请指定一个任务，或至少一个筛选条件（如 --overdue red）", "give an assignment or a filter"))
    body = {"message": message, **{k: v for k, v in filters.items() if v is not None}, "limit": limit}
    with Client(Config.load(token)) as c:
        preview = c.request("progress", "POST", "/v1/reminders", json={**body, "dry_run": True})
        if dry_run:
            emit(preview, as_json, lambda d: console().print(escape(d["message"])))
            return
        status = c.request("progress", "POST", "/v1/reminders", params={"wait": "false"}, json=body,
                           idempotency_key=key)  # fmt: skip
        bar = Progress(TextColumn("催办"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True), transient=True)  # fmt: skip
        with bar:
            job = bar.add_task("remind", total=status["matched"])
            while status["state"] == "running":
                bar.update(job, completed=status["sent"] + status["failed"])
                time.sleep(POLL_S)
                status = c.request("progress", "GET", f"/v1/reminders/{status['job_id']}")
    if status["state"] == "failed":
        raise ApiError(502, status["message"])
    emit(status, as_json, lambda d: console().print(escape(d["message"])))


@handled
def close(
    assignment: Assignment,
    reason: Annotated[str, typer.Option(help="why the task is closed for this unit (销号理由)")],
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Supervisors: 办结销号 close the task for this unit before its horizon."""
    emit(_post(token, key, f"/v1/assignments/{assignment}/closure", {"reason": reason}), as_json, accepted)


def register(app: typer.Typer) -> None:
    app.command("remind")(remind)
    app.command("close")(close)
    app.add_typer(extension_app, name="extension")
