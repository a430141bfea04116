"""Everyday commands over the service APIs: inbox, accept, plan, report, review, verify, status, ...

Each prints a short human answer (Chinese words unless `--lang en`), or the service's JSON with
--json; a refusal is one line on stderr (`error: 409 ...`; with --json `{"error": ..., "status": 409}`)
and exit code 1. Options take what people type: full-width punctuation and digits (services/cli/typed.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli import division_cmd, typed
from services.cli import evidence as evidence_cli
from services.cli import show as show_view
from services.cli.client import Client, Config
from services.cli.common import (
    AsJson,
    Assignment,
    Key,
    Token,
    accepted,
    assignments_table,
    console,
    emit,
    handled,
    read_json,
    t,
    text_or_file,
)
from services.cli.errors import ApiError

DISPATCH_POLL_S = 0.5


def _command(token: str | None, as_json: bool, key: str | None, path: str, body: Any = None) -> None:
    """Every command on an assignment goes to the progress service."""
    with Client(Config.load(token)) as c:
        data = c.request("progress", "POST", path, json=body, idempotency_key=key)
    emit(data, as_json, accepted)


@handled
def inbox(
    unit: Annotated[str | None, typer.Option("--unit", help="unit id (default: your token's unit)")] = None,
    stage: Annotated[str | None, typer.Option(help="only this stage")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Your unit's assignments, most urgent first."""
    config = Config.load(token)
    unit = unit or config.claims().get("unit_id")
    if not unit:
        raise ApiError(0, "which unit? give --unit (your token names none)")
    with Client(config) as c:
        page = c.request(
            "assignment",
            "GET",
            f"/v1/units/{unit}/assignments",
            params={"stage": stage, "limit": limit, "offset": offset},
        )
    emit(page, as_json, lambda p: assignments_table(p, t(f"{unit} 的待办任务", f"inbox of {unit}")))


@handled
def accept(assignment: Assignment, token: Token = None, as_json: AsJson = False, key: Key = None) -> None:
    """Accept (签收) an assignment."""
    _command(token, as_json, key, f"/v1/assignments/{assignment}/accept")


plan_app = typer.Typer(no_args_is_help=True, help="Annual plans (年度计划).")


@plan_app.command("submit")
@handled
def plan_submit(
    assignment: Assignment,
    year: Annotated[str | None, typer.Option(help="plan year", metavar="YEAR")] = None,
    milestone: Annotated[list[str] | None, typer.Option(help="YYYY-MM-DD:title (repeatable; ： works too)")] = None,
    indicator: Annotated[
        list[str] | None,
        typer.Option(help="name:target[:unit] (repeatable; 惠及居民：3000户); an indicator id as name names it"),
    ] = None,
    file: Annotated[Path | None, typer.Option(help="the whole plan as JSON instead")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Submit the annual plan: milestones and indicator targets (a milestone already past is warned of)."""
    if file:
        body = read_json(file)
    else:
        if year is None or not milestone:
            raise ApiError(0, "give --year and at least one --milestone, or --file plan.json")
        body = {
            "year": typed.whole(year, "--year"),
            "milestones": [typed.milestone(m) for m in milestone],
            "indicators": [typed.indicator(i) for i in indicator or []],
        }
    today = typed.today()
    for m in typed.past_milestones(body.get("milestones") or [] if isinstance(body, dict) else [], today):
        typer.echo(t(f"提醒：节点 {m['due']} {m['title']} 早于今天（{today}），已经过去",
                     f"warning: milestone {m['due']} {m['title']} is already past (today is {today} in China)"),
                   err=True)  # fmt: skip
    _command(token, as_json, key, f"/v1/assignments/{assignment}/plans", body)


@handled
def report(
    assignment: Assignment,
    period: Annotated[str, typer.Option(help="quarter, e.g. 2026-Q3")],
    percent: Annotated[str, typer.Option(help="share of the year's work done, 0 to 100", metavar="PERCENT")],
    narrative: Annotated[str | None, typer.Option(help="what was done")] = None,
    narrative_file: Annotated[Path | None, typer.Option(help="what was done, from a text file")] = None,
    value: Annotated[
        list[str] | None,
        typer.Option(help="indicator value name=number (repeatable; ＝ works; an indicator id as name names it)"),
    ] = None,
    evidence: Annotated[list[Path] | None, typer.Option(help="evidence file, uploaded first (repeatable)")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Report progress (进展填报); evidence files are uploaded first and named by the hashes the service answers."""
    values = [typed.value(v) for v in value or []]
    done, _ = typed.number(percent, "--percent", unit_allowed=True)
    if not 0 <= done <= 100:
        raise ApiError(0, f"--percent {percent!r}: give a number from 0 to 100")
    what = text_or_file(narrative, narrative_file, "narrative")
    with Client(Config.load(token)) as c:
        files = [evidence_cli.upload(c, assignment, p) for p in evidence or []]
        body = {
            "period": typed.period(period),
            "percent": done,
            "narrative": what,
            "indicator_values": values,
            "evidence": [{"name": f["name"], "sha256": f["sha256"], "size": f["size"]} for f in files],
        }
        data = c.request("progress", "POST", f"/v1/assignments/{assignment}/reports", json=body, idempotency_key=key)
    emit(data, as_json, accepted)


def _current_year(token: str | None, assignment: str) -> int:
    with Client(Config.load(token)) as c:
        return int(c.request("progress", "GET", f"/v1/assignments/{assignment}")["year"])


@handled
def review(
    assignment: Assignment,
    decision: Annotated[str, typer.Argument(help="approve or return")],
    comment: Annotated[str | None, typer.Option(help="reasons (required to return)")] = None,
    comment_file: Annotated[Path | None, typer.Option(help="the reasons, from a text file")] = None,
    year: Annotated[int | None, typer.Option(help="plan year (default: the assignment's current year)")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Supervisors: approve or return a submitted annual plan."""
    body = {"decision": decision, "comment": text_or_file(comment, comment_file, "comment", required=False)}
    year = year or _current_year(token, assignment)
    _command(token, as_json, key, f"/v1/assignments/{assignment}/plans/{year}/review", body)


@handled
def verify(
    assignment: Assignment,
    decision: Annotated[str, typer.Argument(help="pass or fail")],
    findings: Annotated[str | None, typer.Option(help="findings (required to fail)")] = None,
    findings_file: Annotated[Path | None, typer.Option(help="the findings, from a text file")] = None,
    score: Annotated[float | None, typer.Option(min=0, max=100, help="five-year evaluation score")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Verifiers: pass or fail the year's work (核验)."""
    body: dict[str, Any] = {
        "decision": decision,
        "findings": text_or_file(findings, findings_file, "findings", required=False),
    }
    if score is not None:
        body["score"] = score
    _command(token, as_json, key, f"/v1/assignments/{assignment}/verification", body)


@handled
def request_verification(
    assignment: Assignment,
    note: Annotated[str, typer.Option(help="a note for the verifier")] = "",
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Declare the year's work done and ask for verification."""
    _command(token, as_json, key, f"/v1/assignments/{assignment}/verification-requests", {"note": note})


@handled
def cancel(
    assignment: Assignment,
    reason: Annotated[str, typer.Option(help="why the assignment is cancelled")],
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Supervisors: cancel an assignment."""
    _command(token, as_json, key, f"/v1/assignments/{assignment}/cancel", {"reason": reason})


@handled
def status(
    programme: Annotated[str | None, typer.Option(help="programme id")] = None,
    unit: Annotated[str | None, typer.Option(help="unit id")] = None,
    task: Annotated[int | None, typer.Option(help="task number")] = None,
    group: Annotated[int | None, typer.Option(help="task group number")] = None,
    stage: Annotated[str | None, typer.Option(help="stage")] = None,
    overdue: Annotated[str | None, typer.Option(help="none, blue, yellow, red, or any")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Supervisors: where every assignment stands, most overdue first, with traffic lights."""
    params = {
        "programme_id": programme,
        "unit_id": unit,
        "task_no": task,
        "group": group,
        "stage": stage,
        "overdue": overdue,
        "limit": limit,
        "offset": offset,
    }
    with Client(Config.load(token)) as c:
        page = c.request("progress", "GET", "/v1/status", params=params)
    emit(page, as_json, lambda p: assignments_table(p, t("任务进展", "status")))


@handled
def show(assignment: Assignment, token: Token = None, as_json: AsJson = False) -> None:
    """One assignment in full, live from its workflow: plan, latest report, verification, summary."""
    with Client(Config.load(token)) as c:
        data = c.request("progress", "GET", f"/v1/assignments/{assignment}")
    emit(data, as_json, show_view.show)


@handled
def dispatch(
    programme_id: Annotated[str, typer.Argument(help="programme id")], token: Token = None, as_json: AsJson = False
) -> None:
    """Admins: start one assignment per responsibility, showing progress (repeating it starts nothing new)."""
    path = f"/v1/programmes/{programme_id}/dispatch"
    with Client(Config.load(token)) as c:
        status = c.request("assignment", "POST", path, params={"wait": "false"})
        # On stderr, so stdout stays the result; rich hides the bar when stderr is not a terminal.
        bar = Progress(TextColumn("dispatching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True), transient=True)  # fmt: skip
        with bar:
            task = bar.add_task("dispatch", total=status["total"])
            while status["state"] == "running":
                handled_so_far = status["started"] + status["skipped"] + status["failed"]
                bar.update(task, completed=handled_so_far)
                time.sleep(DISPATCH_POLL_S)
                status = c.request("assignment", "GET", path)
    if status["state"] != "done":
        raise ApiError(503, status["message"])
    emit(status, as_json, lambda d: console().print(d["message"]))


def register(app: typer.Typer) -> None:
    """Add the everyday commands to the `policyflow` app."""
    for name, fn in (
        ("inbox", inbox),
        ("accept", accept),
        ("report", report),
        ("review", review),
        ("verify", verify),
        ("request-verification", request_verification),
        ("cancel", cancel),
        ("status", status),
        ("show", show),
        ("dispatch", dispatch),
        ("reassign", division_cmd.reassign),
    ):
        app.command(name)(fn)
    app.add_typer(plan_app, name="plan")
