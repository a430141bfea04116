"""Everyday commands over the service APIs: inbox, accept, plan, report, review, verify, status, ...

Each prints a short human answer, or the service's JSON with --json; a refusal is one line on
stderr (`error: 409 ...`) and exit code 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli import evidence as evidence_cli
from services.cli.client import ApiError, Client, Config
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
    light,
    read_json,
    stage_text,
)

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
    emit(page, as_json, lambda p: assignments_table(p, f"inbox of {unit}"))


@handled
def accept(assignment: Assignment, token: Token = None, as_json: AsJson = False, key: Key = None) -> None:
    """Accept (签收) an assignment."""
    _command(token, as_json, key, f"/v1/assignments/{assignment}/accept")


plan_app = typer.Typer(no_args_is_help=True, help="Annual plans (年度计划).")


def _milestone(text: str) -> dict[str, str]:
    due, sep, title = text.partition(":")
    if not sep or not title.strip():
        raise ApiError(0, f"--milestone {text!r}: write it as YYYY-MM-DD:title")
    return {"due": due.strip(), "title": title.strip()}


def _indicator(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ApiError(0, f"--indicator {text!r}: write it as name:target or name:target:unit")
    try:
        target = float(parts[1])
    except ValueError as exc:
        raise ApiError(0, f"--indicator {text!r}: the target must be a number") from exc
    return {"name": parts[0], "target": target, "unit": parts[2] if len(parts) == 3 else ""}


@plan_app.command("submit")
@handled
def plan_submit(
    assignment: Assignment,
    year: Annotated[int | None, typer.Option(help="plan year")] = None,
    milestone: Annotated[list[str] | None, typer.Option(help="YYYY-MM-DD:title (repeatable)")] = None,
    indicator: Annotated[list[str] | None, typer.Option(help="name:target[:unit] (repeatable)")] = None,
    file: Annotated[Path | None, typer.Option(help="the whole plan as JSON instead")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Submit the annual plan: milestones and indicator targets."""
    if file:
        body = read_json(file)
    else:
        if year is None or not milestone:
            raise ApiError(0, "give --year and at least one --milestone, or --file plan.json")
        body = {
            "year": year,
            "milestones": [_milestone(m) for m in milestone],
            "indicators": [_indicator(i) for i in indicator or []],
        }
    _command(token, as_json, key, f"/v1/assignments/{assignment}/plans", body)


def _value(text: str) -> dict[str, Any]:
    name, sep, value = text.rpartition("=")
    try:
        return {"name": name, "value": float(value)} if sep and name else _bad_value(text)
    except ValueError:
        return _bad_value(text)


def _bad_value(text: str) -> dict[str, Any]:
    raise ApiError(0, f"--value {text!r}: write it as name=number")


@handled
def report(
    assignment: Assignment,
    period: Annotated[str, typer.Option(help="quarter, e.g. 2026-Q3")],
    percent: Annotated[float, typer.Option(min=0, max=100, help="share of the year's work done")],
    narrative: Annotated[str, typer.Option(help="what was done")],
    value: Annotated[list[str] | None, typer.Option(help="indicator value name=number (repeatable)")] = None,
    evidence: Annotated[list[Path] | None, typer.Option(help="evidence file, uploaded first (repeatable)")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Report progress (进展填报); evidence files are uploaded first and named by the hashes the service answers."""
    values = [_value(v) for v in value or []]
    with Client(Config.load(token)) as c:
        files = [evidence_cli.upload(c, assignment, p) for p in evidence or []]
        body = {
            "period": period,
            "percent": percent,
            "narrative": narrative,
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
    comment: Annotated[str, typer.Option(help="reasons (required to return)")] = "",
    year: Annotated[int | None, typer.Option(help="plan year (default: the assignment's current year)")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Supervisors: approve or return a submitted annual plan."""
    year = year or _current_year(token, assignment)
    body = {"decision": decision, "comment": comment}
    _command(token, as_json, key, f"/v1/assignments/{assignment}/plans/{year}/review", body)


@handled
def verify(
    assignment: Assignment,
    decision: Annotated[str, typer.Argument(help="pass or fail")],
    findings: Annotated[str, typer.Option(help="findings (required to fail)")] = "",
    score: Annotated[float | None, typer.Option(min=0, max=100, help="five-year evaluation score")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Verifiers: pass or fail the year's work (核验)."""
    body: dict[str, Any] = {"decision": decision, "findings": findings}
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
    emit(page, as_json, lambda p: assignments_table(p, "status"))


def _show(d: dict[str, Any]) -> None:
    console().print(f"[bold]{d['assignment_id']}[/bold]  task {d['task_no']} {d.get('task_title', '')}")
    console().print(
        f"unit {d['unit_id']} ({d['role']}), {stage_text(d['stage'])} for {d['year']} "
        f"(horizon {d['horizon_year']}), {d.get('percent', 0):g}% done, overdue {light(d['overdue_level'])}"
    )
    for dl in d.get("deadlines", []):
        console().print(f"  due {dl['due']}  {dl['kind']} ({dl['key']})")
    plan = d.get("plan")
    if plan:
        console().print(
            f"plan {plan.get('year')} rev {plan.get('revision')}: {plan.get('status')}"
            + (f" — {plan['reasons']}" if plan.get("reasons") else "")
        )
    last = d.get("last_report")
    if last:
        console().print(f"last report {last['period']}: {last['percent']:g}% — {last['narrative'][:80]}")
    counts = ", ".join(f"{k} {v}" for k, v in d.get("counts", {}).items())
    console().print(f"[dim]{counts}; workflow {d['workflow_id']}[/dim]")


@handled
def show(assignment: Assignment, token: Token = None, as_json: AsJson = False) -> None:
    """One assignment in full, live from its workflow."""
    with Client(Config.load(token)) as c:
        data = c.request("progress", "GET", f"/v1/assignments/{assignment}")
    emit(data, as_json, _show)


@handled
def dispatch(
    programme_id: Annotated[str, typer.Argument(help="programme id")], token: Token = None, as_json: AsJson = False
) -> None:
    """Supervisors: start one assignment per responsibility, showing progress (repeating it starts nothing new)."""
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
    ):
        app.command(name)(fn)
    app.add_typer(plan_app, name="plan")
