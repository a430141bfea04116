"""policyflow programme commands: parse a policy text, check a programme and its division.

Exit codes: 0 ok; 1 the division / units / schedule files have problems (one per line on
stderr, as file:line: field: message); 2 the policy text or a file cannot be used at all.
With `--json`, `parse` prints the same programme JSON and `check` the summary as data
(warnings also on stderr); an error is one line `{"error": ..., "status": 0}` on stderr (for
problems in the files, with `"problems": [...]`), with the same exit codes.
`programme import` posts the checked programme to the assignment service; for a programme already
imported it shows the revised division's difference, applied with `--apply`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from contracts.api import ProgrammeImport
from contracts.base import Role
from contracts.catalog import UnitKind
from services.assignment.programme_dir import (
    ProgrammeFileError,
    load_programme_dir,
    load_programme_file,
    read_policy_text,
)
from services.assignment.programme_text import ProgrammeParseError, parse_document
from services.assignment.source_files import DivisionError
from services.cli import division_cmd, propose
from services.cli.answers import answer, refuse
from services.cli.client import Client, Config
from services.cli.common import AsJson, Token, console, emit, handled, read_json
from services.cli.errors import ApiError

app = typer.Typer(no_args_is_help=True, help="programme commands")


def _fail(message: str, as_json: bool, code: int = 2, **more: Any) -> NoReturn:
    raise refuse(message, as_json, code, **more)


@app.command()
def parse(
    path: Annotated[Path, typer.Argument(help="policy text (UTF-8), e.g. examples/cq-2022-79/policy.txt")],
    as_json: AsJson = False,
) -> None:
    """Parse a policy text and print the programme as JSON (goals, groups, tasks, safeguards)."""
    try:
        doc = parse_document(read_policy_text(path))
    except ProgrammeFileError as exc:
        _fail(str(exc), as_json)
    except ProgrammeParseError as exc:
        _fail(f"{path}: {exc.message}", as_json)
    # A partial parse says what it skipped, on stderr: stdout stays the programme alone.
    for notice in doc.notices:
        typer.echo(f"note: {notice}", err=True)
    for skipped in doc.skipped:
        typer.echo(f"skipped: {skipped}", err=True)
    # The output is JSON with or without --json: the flag is accepted so every command takes it.
    typer.echo(json.dumps(doc.programme.model_dump(mode="json"), ensure_ascii=False, indent=2))


@app.command("propose-division")
def propose_division(
    directory: Annotated[Path, typer.Argument(help="a programme directory with policy.txt and units.yaml")],
    output: Annotated[Path | None, typer.Option(help="file to write (default: DIR/division.proposed.yaml)")] = None,
    horizon_year: Annotated[int | None, typer.Option(help="horizon year (default: the text's last goal year)")] = None,
    as_json: AsJson = False,
) -> None:
    """Propose a division of work from the text's own notes and annexed table, for review."""
    propose.propose_division(directory, output, horizon_year, as_json)


@app.command()
def check(
    target: Annotated[Path, typer.Argument(help="a programme directory (policy.txt, units.yaml, ...) or policy text")],
    division: Annotated[Path | None, typer.Option(help="division file (.yaml or .csv) to use instead")] = None,
    units: Annotated[Path | None, typer.Option(help="unit registry (.yaml), for a bare policy text")] = None,
    schedule: Annotated[Path | None, typer.Option(help="schedule (.yaml), for a bare policy text")] = None,
    programme_id: Annotated[str | None, typer.Option("--id", help="programme id (default: from the name)")] = None,
    as_json: AsJson = False,
) -> None:
    """Validate a programme and its division of work (a division file, or else the text's own
    notes and annexed table), and print a summary with what the reading skipped."""
    report: list[str] = []
    try:
        if target.is_dir():
            loaded = load_programme_dir(target, programme_id=programme_id, division=division, report=report)
        else:
            loaded = load_programme_file(target, division, units, schedule, programme_id, report=report)
    except (ProgrammeFileError, ProgrammeParseError) as exc:
        _fail(str(exc) if isinstance(exc, ProgrammeFileError) else f"{target}: {exc}", as_json)
    except DivisionError as exc:
        for line in report if not as_json else ():
            typer.echo(_reported(line), err=True)
        if not as_json:
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
        problems = [str(p) for p in exc.problems]
        _fail(f"{len(problems)} problem(s); nothing was loaded", as_json, code=1, problems=problems, report=report)
    data = summary_data(loaded) | {"report": report}
    if as_json:
        for warning in data["warnings"]:
            typer.echo(f"warning: {warning}", err=True)
        answer(data)
        return
    for line in summary(loaded) + [_reported(r) for r in report]:
        typer.echo(line)


def _reported(line: str) -> str:
    return line if line.startswith("skipped: ") else f"note: {line}"


def summary_data(loaded: ProgrammeImport) -> dict[str, Any]:
    """What `programme check` says of a checked programme, as data."""
    p, d = loaded.programme, loaded.division
    tasks = p.tasks()
    kinds = Counter(u.kind for u in loaded.units)
    roles = Counter(r.role for r in d.responsibilities)
    covered = {r.task_no for r in d.responsibilities}
    led = {r.task_no for r in d.responsibilities if r.role == Role.LEAD}
    warnings = []
    if not covered:
        warnings.append("no division of work (give a division file, and the unit registry it refers to)")
    elif missing := [t.no for t in tasks if t.no not in covered]:
        warnings.append(f"no responsibilities for tasks {', '.join(map(str, missing))}")
    if no_lead := [t.no for t in tasks if t.no in covered and t.no not in led]:
        warnings.append(f"no lead unit for tasks {', '.join(map(str, no_lead))}")
    return {
        "programme_id": loaded.programme_id,
        "document_no": p.document_no,
        "title": p.title,
        "issued_on": p.issued_on.isoformat() if p.issued_on else None,
        "tasks": len(tasks),
        "groups": len(p.groups),
        "goal_years": [g.year for g in p.goals],
        "units": {
            "total": len(loaded.units),
            "departments": kinds[UnitKind.DEPARTMENT],
            "districts": kinds[UnitKind.DISTRICT],
        },
        "responsibilities": {
            "total": len(d.responsibilities),
            "lead": roles[Role.LEAD],
            "cooperating": roles[Role.COOPERATING],
            "responsible": roles[Role.RESPONSIBLE],
        },
        "example_division": d.example,
        "schedule": {"start_year": loaded.schedule.start_year, "evaluation_years": loaded.schedule.evaluation_years},
        "warnings": warnings,
    }


def summary(loaded: ProgrammeImport) -> list[str]:
    """A few lines describing a checked programme, ending with any warnings."""
    s = summary_data(loaded)
    units, resp = s["units"], s["responsibilities"]
    label = " - EXAMPLE division, not an official task list" if s["example_division"] else ""
    return [
        f"programme {s['programme_id']}: {s['document_no']} {s['title']}"
        + (f" ({s['issued_on']})" if s["issued_on"] else ""),
        f"tasks: {s['tasks']} in {s['groups']} groups; goals: {', '.join(map(str, s['goal_years'])) or 'none'}",
        f"units: {units['total']} ({units['departments']} departments, {units['districts']} district-level)",
        f"responsibilities: {resp['total']} ({resp['lead']} lead, {resp['cooperating']} cooperating, "
        f"{resp['responsible']} responsible){label}",
        f"schedule: from {s['schedule']['start_year']}; evaluations "
        f"{', '.join(map(str, s['schedule']['evaluation_years'])) or 'none'}",
        *(f"warning: {w}" for w in s["warnings"]),
    ]


def _load_programme(path: Path, division: Path | None, programme_id: str | None) -> dict[str, Any]:
    if path.is_file() and path.suffix == ".json":
        body = read_json(path)
        if programme_id:
            body["programme_id"] = programme_id
        return dict(body)
    # The parser and division loader run here, client-side, so problems show before any upload.
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


@app.command("import")
@handled
def import_programme(
    path: Annotated[Path, typer.Argument(help="programme directory, policy text, or ProgrammeImport JSON")],
    division: Annotated[Path | None, typer.Option(help="division file (.yaml or .csv) to use instead")] = None,
    programme_id: Annotated[str | None, typer.Option("--id", help="programme id (default: from the name)")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="apply a revised division (shown first without it)")] = False,
    force: Annotated[bool, typer.Option("--force", help="with --apply: remove assignments that have reports")] = False,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Admins: import a programme and its division (importing the same again changes nothing).

    A programme already imported with a changed division (or tasks) is a revision: the difference
    is shown (added, removed, changed assignments) and applied only with --apply."""
    body = _load_programme(path, division, programme_id)
    with Client(Config.load(token), timeout=120) as c:
        try:
            c.request("assignment", "GET", f"/v1/programmes/{body['programme_id']}")
            known = True
        except ApiError as exc:
            if exc.status != 404:
                raise
            known = False
        if known:
            division_cmd.revise(c, body, apply, force, as_json)
            return
        data = c.request("assignment", "POST", "/v1/programmes", json=body)

    def human(d: dict[str, Any]) -> None:
        verb = "imported" if d["imported"] else "already imported, unchanged:"
        label = " (EXAMPLE division)" if d["example_division"] else ""
        console().print(
            f"{verb} {d['programme_id']}: {d['document_no']} {d['title']} — {d['task_count']} tasks, "
            f"{d['responsibility_count']} responsibilities{label}"
        )

    emit(data, as_json, human)


app.command("add-unit")(division_cmd.add_unit)
