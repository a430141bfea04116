"""A programme as files on disk -> the ProgrammeImport body the assignment service accepts.

A programme directory (see examples/cq-2022-79/) holds:

    policy.txt      the policy document as plain UTF-8 text
    units.yaml      the unit registry
    division.yaml   the division of work (or division.csv; optional: see below)
    schedule.yaml   start year, evaluation years, deadline rules (optional: defaults)
    indicators.yaml the programme's indicators and scoring rule (optional: none, example scoring)
    calendar.yaml   when bulletins, score snapshots and evaluations fall due (optional: the default)

`load_programme_file` takes a bare policy text plus whichever of the other files the caller
has. Without a division file, both use the division the document states in its own notes or
annexed table, its names matched to the unit registry as `programme propose-division` matches
them (exact, known short form, a set of districts; anything else is a problem to fix).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from contracts.api import ProgrammeImport
from contracts.catalog import Division, Programme, Schedule, Unit
from contracts.ids import PROGRAMME_ID_PATTERN
from contracts.indicators import ProgrammeOutcomes
from contracts.programme_calendar import CALENDAR_FILE, ProgrammeCalendar
from services.assignment.division import load_division, load_schedule, load_units
from services.assignment.notes_division import division_from_notes
from services.assignment.programme_text import parse_document
from services.assignment.source_files import Problem, load_yaml, raise_if, validate

POLICY_FILE = "policy.txt"
UNITS_FILE = "units.yaml"
DIVISION_FILES = ("division.yaml", "division.yml", "division.csv")
SCHEDULE_FILE = "schedule.yaml"
INDICATORS_FILE = "indicators.yaml"


class ProgrammeFileError(ValueError):
    """A programme file or directory is missing or unreadable; the message is one line."""


def read_policy_text(path: str | Path) -> str:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProgrammeFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ProgrammeFileError(f"{path}: is a directory, not a text file") from None
    except OSError as exc:
        raise ProgrammeFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProgrammeFileError(f"{path}: not UTF-8 text (byte {exc.start}); convert it to UTF-8 first") from None


def programme_id_for(name: str, programme: Programme | None = None) -> str:
    """A programme id from a file or directory name (lower-case ASCII, digits, '-'), falling
    back to the digits of the document number (国发〔2019〕3号 -> programme-2019-3)."""
    candidates = [name]
    if programme is not None and programme.document_no:
        candidates.append("programme-" + "-".join(re.findall(r"\d+", programme.document_no)))
    for candidate in candidates:
        slug = re.sub(r"[^a-z0-9]+", "-", candidate.lower()).strip("-")[:63]
        if re.fullmatch(PROGRAMME_ID_PATTERN, slug):
            return slug
    raise ProgrammeFileError(f"cannot make a programme id from {name!r}: give one explicitly (a-z, 0-9, '-')")


def _checked_id(programme_id: str) -> str:
    if not re.fullmatch(PROGRAMME_ID_PATTERN, programme_id):
        raise ProgrammeFileError(f"bad programme id {programme_id!r}: use 2-63 of a-z, 0-9 and '-'")
    return programme_id


def default_schedule(programme: Programme) -> Schedule:
    """Start in the issue year; evaluate at the goal years (到 2025 年 / 到 2035 年)."""
    start = programme.issued_on.year if programme.issued_on else dt.date.today().year
    return Schedule(start_year=start, evaluation_years=sorted(g.year for g in programme.goals if g.year >= start))


def load_programme_file(
    path: str | Path,
    division: str | Path | None = None,
    units: str | Path | None = None,
    schedule: str | Path | None = None,
    programme_id: str | None = None,
    report: list[str] | None = None,
) -> ProgrammeImport:
    """A ProgrammeImport from a policy text and optional units / division / schedule files.
    The programme id defaults to one made from the file name (from the directory's name for a
    programme directory's policy.txt). `report`, when given, receives what a person should know
    of the reading: the parts of the text skipped, names read by a known short form.

    Raises ProgrammeFileError, ProgrammeParseError or DivisionError."""
    path = Path(path)
    id_from = path.resolve().parent.name if path.name == POLICY_FILE else path.stem
    return _load(path, division, units, schedule, programme_id, id_from=id_from, report=report)


def load_programme_dir(
    directory: str | Path,
    programme_id: str | None = None,
    division: str | Path | None = None,
    report: list[str] | None = None,
) -> ProgrammeImport:
    """A ProgrammeImport from a programme directory; `division` overrides the directory's own.
    The programme id defaults to one made from the directory name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ProgrammeFileError(f"{directory}: not a directory")
    units = directory / UNITS_FILE
    if not units.is_file():
        raise ProgrammeFileError(f"{units}: no such file (the unit registry)")
    if division is None:
        # With no division file, the division is the one the text's own notes state.
        division = next((directory / n for n in DIVISION_FILES if (directory / n).is_file()), None)
    schedule = directory / SCHEDULE_FILE
    body = _load(
        directory / POLICY_FILE,
        division,
        units,
        schedule if schedule.is_file() else None,
        programme_id,
        id_from=directory.resolve().name,
        report=report,
    )
    indicators = directory / INDICATORS_FILE
    if indicators.is_file():
        body = body.model_copy(update={"outcomes": load_outcomes(indicators)})
    calendar = directory / CALENDAR_FILE
    if calendar.is_file():
        body = body.model_copy(update={"calendar": load_calendar(calendar)})
    return body


def load_calendar(path: Path) -> ProgrammeCalendar:
    """calendar.yaml, its problems reported with their lines like the division's."""
    root = load_yaml(path)
    problems: list[Problem] = []
    calendar = validate(ProgrammeCalendar, root, str(path), problems)
    raise_if(problems)
    assert calendar is not None
    return calendar


def load_outcomes(path: Path) -> ProgrammeOutcomes:
    """indicators.yaml, its problems reported with their lines like the division's."""
    root = load_yaml(path)
    problems: list[Problem] = []
    outcomes = validate(ProgrammeOutcomes, root, str(path), problems)
    raise_if(problems)
    assert outcomes is not None
    return outcomes


def _load(
    path: Path,
    division: str | Path | None,
    units: str | Path | None,
    schedule: str | Path | None,
    programme_id: str | None,
    id_from: str,
    report: list[str] | None = None,
) -> ProgrammeImport:
    doc = parse_document(read_policy_text(path))
    programme = doc.programme
    if report is not None:
        report += doc.notices + [f"skipped: {s}" for s in doc.skipped]
    registry: list[Unit] = load_units(units) if units else []
    timing = load_schedule(schedule) if schedule else default_schedule(programme)
    if division:
        work = load_division(division, registry, programme)
    elif any(t.responsibilities for t in programme.tasks()):
        horizon = max((g.year for g in programme.goals), default=timing.start_year + 4)

        def where(name: str, task_no: int) -> tuple[str, int]:
            return doc.source(task_no).label, doc.line_of(name, task_no)

        work = division_from_notes(programme, registry, horizon, source=str(path), notes=report, where=where)
    else:
        note = "no division of work: the text names none and no division file was given"
        work = Division(note=note, responsibilities=[])
    return ProgrammeImport(
        programme_id=_checked_id(programme_id) if programme_id else programme_id_for(id_from, programme),
        programme=programme,
        units=registry,
        division=work,
        schedule=timing,
    )
