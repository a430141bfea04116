"""policyflow programme commands: parse a policy text, check a programme and its division.

Exit codes: 0 ok; 1 the division / units / schedule files have problems (one per line on
stderr, as file:line: field: message); 2 the policy text or a file cannot be used at all.
`programme import` posts the checked programme to the assignment service.
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
from services.assignment.programme_text import ProgrammeParseError, parse_programme
from services.assignment.source_files import DivisionError
from services.cli.client import ApiError, Client, Config
from services.cli.common import AsJson, Token, console, emit, handled, read_json

app = typer.Typer(no_args_is_help=True, help="programme commands")


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def parse(
    path: Annotated[Path, typer.Argument(help="policy text (UTF-8), e.g. examples/cq-2022-79/policy.txt")],
) -> None:
    """Parse a policy text and print the programme as JSON (goals, groups, tasks, safeguards)."""
    try:
        programme = parse_programme(read_policy_text(path))
    except ProgrammeFileError as exc:
        _fail(str(exc))
    except ProgrammeParseError as exc:
        _fail(f"{path}: {exc.message}")
    typer.echo(json.dumps(programme.model_dump(mode="json"), ensure_ascii=False, indent=2))


@app.command()
def check(
    target: Annotated[Path, typer.Argument(help="a programme directory (policy.txt, units.yaml, ...) or policy text")],
    division: Annotated[Path | None, typer.Option(help="division file (.yaml or .csv) to use instead")] = None,
    units: Annotated[Path | None, typer.Option(help="unit registry (.yaml), for a bare policy text")] = None,
    schedule: Annotated[Path | None, typer.Option(help="schedule (.yaml), for a bare policy text")] = None,
    programme_id: Annotated[str | None, typer.Option("--id", help="programme id (default: from the name)")] = None,
) -> None:
    """Validate a programme and its division of work, and print a summary."""
    try:
        if target.is_dir():
            loaded = load_programme_dir(target, programme_id=programme_id, division=division)
        else:
            loaded = load_programme_file(target, division, units, schedule, programme_id)
    except (ProgrammeFileError, ProgrammeParseError) as exc:
        _fail(str(exc) if isinstance(exc, ProgrammeFileError) else f"{target}: {exc}")
    except DivisionError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        _fail(f"{len(exc.problems)} problem(s); nothing was loaded", code=1)
    for line in summary(loaded):
        typer.echo(line)


def summary(loaded: ProgrammeImport) -> list[str]:
    """A few lines describing a checked programme, ending with any warnings."""
    p, d = loaded.programme, loaded.division
    tasks = p.tasks()
    kinds = Counter(u.kind for u in loaded.units)
    roles = Counter(r.role for r in d.responsibilities)
    label = " - EXAMPLE division, not an official task list" if d.example else ""
    lines = [
        f"programme {loaded.programme_id}: {p.document_no} {p.title}" + (f" ({p.issued_on})" if p.issued_on else ""),
        f"tasks: {len(tasks)} in {len(p.groups)} groups; goals: {', '.join(str(g.year) for g in p.goals) or 'none'}",
        f"units: {len(loaded.units)} ({kinds[UnitKind.DEPARTMENT]} departments, "
        f"{kinds[UnitKind.DISTRICT]} district-level)",
        f"responsibilities: {len(d.responsibilities)} ({roles[Role.LEAD]} lead, {roles[Role.COOPERATING]} cooperating, "
        f"{roles[Role.RESPONSIBLE]} responsible){label}",
        f"schedule: from {loaded.schedule.start_year}; evaluations "
        f"{', '.join(map(str, loaded.schedule.evaluation_years)) or 'none'}",
    ]
    covered = {r.task_no for r in d.responsibilities}
    led = {r.task_no for r in d.responsibilities if r.role == Role.LEAD}
    if not covered:
        lines.append("warning: no division of work (give a division file, and the unit registry it refers to)")
    elif missing := [t.no for t in tasks if t.no not in covered]:
        lines.append(f"warning: no responsibilities for tasks {', '.join(map(str, missing))}")
    if no_lead := [t.no for t in tasks if t.no in covered and t.no not in led]:
        lines.append(f"warning: no lead unit for tasks {', '.join(map(str, no_lead))}")
    return lines


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
        console().print(
            f"{verb} {d['programme_id']}: {d['document_no']} {d['title']} — {d['task_count']} tasks, "
            f"{d['responsibility_count']} responsibilities{label}"
        )

    emit(data, as_json, human)
