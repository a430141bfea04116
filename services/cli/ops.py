"""Everyday commands over the service APIs: inbox, accept, plan, report, review, verify, status, ...

Each prints a short human answer, or the service's JSON with --json; a refusal is one line on
stderr (`error: 409 ...`) and exit code 1.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.cli.client import ApiError, Client, Config

P = ParamSpec("P")
R = TypeVar("R")

Token = Annotated[str | None, typer.Option("--token", help="bearer token [env POLICYFLOW_TOKEN, config file]")]
AsJson = Annotated[bool, typer.Option("--json", help="print the service's JSON answer")]
Key = Annotated[str | None, typer.Option("--idempotency-key", help="reuse to retry safely (default: a new one)")]
Assignment = Annotated[str, typer.Argument(help="assignment id, e.g. cq-2022-79.t14.yuzhong")]

LIGHTS = {"none": "green", "blue": "blue", "yellow": "yellow", "red": "red"}
DISPATCH_POLL_S = 0.5
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
            i["assignment_id"], str(i["task_no"]), i.get("task_title", "")[:30], i["unit_id"], i["role"],
            stage_text(i["stage"]), str(i["year"]), deadline_text(i.get("next_deadline")), f"{i.get('percent', 0):g}",
            light(i["overdue_level"]),
        )
    console().print(table)


def accepted(data: dict[str, Any]) -> None:
    note = " (already done earlier: replayed, nothing new)" if data.get("replayed") else ""
    console().print(f"{data['assignment_id']}: now {stage_text(data['stage'])} for {data['year']}{note}")


def _command(
    token: str | None, as_json: bool, key: str | None, service: str, path: str, body: Any = None
) -> None:
    with Client(Config.load(token)) as c:
        data = c.request(service, "POST", path, json=body, idempotency_key=key)
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
        page = c.request("assignment", "GET", f"/v1/units/{unit}/assignments",
                         params={"stage": stage, "limit": limit, "offset": offset})
    emit(page, as_json, lambda p: assignments_table(p, f"inbox of {unit}"))


@handled
def accept(assignment: Assignment, token: Token = None, as_json: AsJson = False, key: Key = None) -> None:
    """Accept (签收) an assignment."""
    _command(token, as_json, key, "assignment", f"/v1/assignments/{assignment}/accept")


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


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ApiError(0, f"cannot read {path}: {exc}") from exc


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
        body = _load_json(file)
    else:
        if year is None or not milestone:
            raise ApiError(0, "give --year and at least one --milestone, or --file plan.json")
        body = {"year": year, "milestones": [_milestone(m) for m in milestone],
                "indicators": [_indicator(i) for i in indicator or []]}
    _command(token, as_json, key, "progress", f"/v1/assignments/{assignment}/plans", body)


def _evidence(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ApiError(0, f"cannot read evidence {path}: {exc}") from exc
    return {"name": path.name, "sha256": digest.hexdigest(), "size": path.stat().st_size}


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
    evidence: Annotated[list[Path] | None, typer.Option(help="evidence file; its sha256 and size are sent")] = None,
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Report progress (进展填报), with evidence files identified by sha256."""
    body = {"period": period, "percent": percent, "narrative": narrative,
            "indicator_values": [_value(v) for v in value or []], "evidence": [_evidence(p) for p in evidence or []]}
    _command(token, as_json, key, "progress", f"/v1/assignments/{assignment}/reports", body)


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
    _command(token, as_json, key, "progress", f"/v1/assignments/{assignment}/plans/{year}/review", body)


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
    _command(token, as_json, key, "progress", f"/v1/assignments/{assignment}/verification", body)


@handled
def request_verification(
    assignment: Assignment,
    note: Annotated[str, typer.Option(help="a note for the verifier")] = "",
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Declare the year's work done and ask for verification."""
    _command(token, as_json, key, "progress", f"/v1/assignments/{assignment}/verification-requests", {"note": note})


@handled
def cancel(
    assignment: Assignment,
    reason: Annotated[str, typer.Option(help="why the assignment is cancelled")],
    token: Token = None,
    as_json: AsJson = False,
    key: Key = None,
) -> None:
    """Supervisors: cancel an assignment."""
    _command(token, as_json, key, "progress", f"/v1/assignments/{assignment}/cancel", {"reason": reason})


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
    params = {"programme_id": programme, "unit_id": unit, "task_no": task, "group": group, "stage": stage,
              "overdue": overdue, "limit": limit, "offset": offset}
    with Client(Config.load(token)) as c:
        page = c.request("progress", "GET", "/v1/status", params=params)
    emit(page, as_json, lambda p: assignments_table(p, "status"))


def _show(d: dict[str, Any]) -> None:
    console().print(f"[bold]{d['assignment_id']}[/bold]  task {d['task_no']} {d.get('task_title', '')}")
    console().print(f"unit {d['unit_id']} ({d['role']}), {stage_text(d['stage'])} for {d['year']} "
                  f"(horizon {d['horizon_year']}), {d.get('percent', 0):g}% done, overdue {light(d['overdue_level'])}")
    for dl in d.get("deadlines", []):
        console().print(f"  due {dl['due']}  {dl['kind']} ({dl['key']})")
    plan = d.get("plan")
    if plan:
        console().print(f"plan {plan.get('year')} rev {plan.get('revision')}: {plan.get('status')}"
                      + (f" — {plan['reasons']}" if plan.get("reasons") else ""))
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


def _load_programme(path: Path, division: Path | None, programme_id: str | None) -> dict[str, Any]:
    if path.is_file() and path.suffix == ".json":
        body = _load_json(path)
        if programme_id:
            body["programme_id"] = programme_id
        return dict(body)
    # The parser and division loader run here, client-side, so problems show before any upload.
    from services.assignment.division import DivisionError
    from services.assignment.programme_dir import ProgrammeFileError, load_programme_dir, load_programme_file
    from services.assignment.programme_text import ProgrammeParseError

    try:
        if path.is_dir():
            loaded = load_programme_dir(path, programme_id=programme_id, division=division)
        else:
            loaded = load_programme_file(path, division, None, None, programme_id)
    except DivisionError as exc:
        raise ApiError(0, "; ".join(str(p) for p in exc.problems[:5])) from exc
    except (ProgrammeFileError, ProgrammeParseError) as exc:
        raise ApiError(0, f"{path}: {exc}") from exc
    return loaded.model_dump(mode="json")


@handled
def import_programme(
    path: Annotated[Path, typer.Argument(help="programme directory, policy text, or ProgrammeImport JSON")],
    division: Annotated[Path | None, typer.Option(help="division file (.yaml or .csv) to use instead")] = None,
    programme_id: Annotated[str | None, typer.Option("--id", help="programme id (default: from the name)")] = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Supervisors: import a programme and its division (importing the same again changes nothing)."""
    body = _load_programme(path, division, programme_id)
    with Client(Config.load(token), timeout=120) as c:
        data = c.request("assignment", "POST", "/v1/programmes", json=body)

    def human(d: dict[str, Any]) -> None:
        verb = "imported" if d["imported"] else "already imported, unchanged:"
        label = " (EXAMPLE division)" if d["example_division"] else ""
        console().print(f"{verb} {d['programme_id']}: {d['document_no']} {d['title']} — {d['task_count']} tasks, "
                      f"{d['responsibility_count']} responsibilities{label}")

    emit(data, as_json, human)


def register(app: typer.Typer) -> None:
    """Add the everyday commands to the `policyflow` app, and `programme import` to its programme group."""
    for name, fn in (
        ("inbox", inbox), ("accept", accept), ("report", report), ("review", review), ("verify", verify),
        ("request-verification", request_verification), ("cancel", cancel), ("status", status), ("show", show),
        ("dispatch", dispatch),
    ):
        app.command(name)(fn)
    app.add_typer(plan_app, name="plan")
    from services.cli import programme

    if not any(c.name == "import" for c in programme.app.registered_commands):
        programme.app.command("import")(import_programme)
