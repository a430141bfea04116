"""The unit registry, the division of work (任务分工) and the schedule, loaded from files.

Every loader validates everything it reads and reports *all* problems at once, each with
file, line and field (`division.csv:14: unit_id: unknown unit 'yuzhong2'`), and returns
nothing when there is any problem: a half-valid division must never be imported.

File formats (see examples/cq-2022-79/):

units.yaml::

    units:
      - {unit_id: yuzhong, name: 渝中区, kind: district, aliases: [渝中]}

division.yaml (per task; `all-districts` stands for every district-level unit)::

    example: true
    note: ...
    horizon_year: 2035              # default for tasks that do not say
    tasks:
      - task: 1
        lead: cq-fgw                # a unit id, name or alias; or a list
        cooperating: [cq-ghzrj, 市住房城乡建委]
        responsible: all-districts  # or a list of units
        except: [yuzhong]           # optional: units left out of all-districts
        horizon_year: 2030
    responsibilities:               # optional flat rows, as in the CSV form
      - {task_no: 2, unit_id: yuzhong, role: responsible, horizon_year: 2035}

division.csv: a header `task_no,unit_id,role,horizon_year` and one row per responsibility;
roles may be written lead / cooperating / responsible or 牵头 / 配合 / 负责.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.base import Role
from contracts.catalog import Division, Programme, Responsibility, Schedule, Unit, UnitKind
from services.assignment.source_files import (
    DivisionError,
    Located,
    Problem,
    line_of,
    load_yaml,
    raise_if,
    read_text,
    validate,
)

ALL_DISTRICTS = "all-districts"
ROLE_WORDS: dict[str, Role] = {
    **{r.value: r for r in Role},
    "牵头": Role.LEAD,
    "配合": Role.COOPERATING,
    "负责": Role.RESPONSIBLE,
}
ROLE_RANK = {Role.LEAD: 0, Role.COOPERATING: 1, Role.RESPONSIBLE: 2}
# How documents name "every district-level unit" in their own division notes.
DISTRICTS_WORDS = ("各区县政府", "各区县", "各区县（自治县）政府", "各区县（自治县）", "各区县人民政府")


# -- units -----------------------------------------------------------------------------------


def load_units(path: str | Path) -> list[Unit]:
    """The unit registry: a YAML list of units (under `units:`), each id and name unique."""
    path = Path(path)
    file = str(path)
    root = load_yaml(path)
    items = root.value.get("units") if isinstance(root.value, dict) else root
    if not isinstance(items, Located) or not isinstance(items.value, list):
        raise DivisionError([Problem(file, root.line, "units", "expected a list of units")])
    problems: list[Problem] = []
    units: list[Unit] = []
    ids: dict[str, int] = {}
    names: dict[str, tuple[str, int]] = {}
    for item in items.value:
        unit = validate(Unit, item, file, problems)
        if unit is None:
            continue
        if unit.unit_id in ids:
            problems.append(
                Problem(file, item.line, "unit_id", f"duplicate unit '{unit.unit_id}' (line {ids[unit.unit_id]})")
            )
            continue
        ids[unit.unit_id] = item.line
        for name in {unit.name, *unit.aliases}:
            if name in names and names[name][0] != unit.unit_id:
                other, line = names[name]
                message = f"'{name}' already names unit '{other}' (line {line})"
                problems.append(Problem(file, item.line, "name", message))
            names[name] = (unit.unit_id, item.line)
        units.append(unit)
    if not units and not problems:
        problems.append(Problem(file, items.line, "units", "no units"))
    raise_if(problems)
    return units


class _Registry:
    """Resolves a unit reference (id, name, alias or all-districts) to unit ids."""

    def __init__(self, units: list[Unit]) -> None:
        self.by_key: dict[str, str] = {}
        for u in units:
            for key in (u.unit_id, u.name, *u.aliases):
                self.by_key.setdefault(key, u.unit_id)
        self.ids = [u.unit_id for u in units]
        self.districts = [u.unit_id for u in units if u.kind == UnitKind.DISTRICT]

    def resolve(self, ref: Any) -> list[str] | str:
        """The unit ids a reference stands for, or an error message."""
        ref = str(ref).strip() if ref is not None else ""
        if ref == ALL_DISTRICTS or ref in DISTRICTS_WORDS:
            return list(self.districts)
        if ref in self.by_key:
            return [self.by_key[ref]]
        hint = difflib.get_close_matches(ref, self.ids, n=1)
        return f"unknown unit '{ref}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")


# -- the division ----------------------------------------------------------------------------


@dataclass
class _Row:
    task_no: Any
    unit: Located  # the unit reference as written
    role: Any
    horizon: Any
    line: int
    unit_field: str  # the column / key the unit came from, for messages


class DivisionChecker:
    """Turns raw rows into Responsibility lines, collecting every problem on the way."""

    def __init__(self, file: str, units: list[Unit], programme: Programme) -> None:
        self.file = file
        self.registry = _Registry(units)
        self.task_nos = {t.no for t in programme.tasks()}
        self.first_year = programme.issued_on.year if programme.issued_on else 2000
        self.problems: list[Problem] = []
        self.seen: dict[tuple[int, str], int] = {}
        self.out: list[Responsibility] = []

    def problem(self, line: int | None, field: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, field, message))

    def task(self, value: Any, line: int, field: str) -> int | None:
        no = _int(value)
        if no is None or no not in self.task_nos:
            span = f"{min(self.task_nos)}..{max(self.task_nos)}" if self.task_nos else "none"
            self.problem(line, field, f"unknown task {value!r} (the programme's tasks are {span})")
            return None
        return no

    def horizon(self, value: Any, line: int, field: str) -> int | None:
        year = _int(value)
        if year is None or not self.first_year <= year <= 2100:
            self.problem(line, field, f"bad horizon year {value!r} (expected a year {self.first_year}..2100)")
            return None
        return year

    def role(self, value: Any, line: int, field: str) -> Role | None:
        role = ROLE_WORDS.get(str(value).strip().lower()) if value is not None else None
        if role is None:
            self.problem(line, field, f"bad role {value!r} (expected lead, cooperating or responsible)")
        return role

    def units(self, ref: Located, field: str, exclude: Iterable[str] = ()) -> list[str]:
        found = self.registry.resolve(ref.value)
        if isinstance(found, str):
            self.problem(ref.line, field, found)
            return []
        return [u for u in found if u not in exclude] if ref.value in (ALL_DISTRICTS, *DISTRICTS_WORDS) else found

    def add(self, task_no: int, unit_id: str, role: Role, horizon: int, line: int, field: str) -> None:
        key = (task_no, unit_id)
        if key in self.seen:
            first = self.seen[key]
            self.problem(line, field, f"duplicate: unit '{unit_id}' is already on task {task_no} (line {first})")
            return
        self.seen[key] = line
        self.out.append(Responsibility(task_no=task_no, unit_id=unit_id, role=role, horizon_year=horizon))

    def row(self, row: _Row, fields: tuple[str, str, str]) -> None:
        task_f, role_f, horizon_f = fields
        task_no = self.task(row.task_no, row.line, task_f)
        role = self.role(row.role, row.line, role_f)
        horizon = self.horizon(row.horizon, row.line, horizon_f)
        unit_ids = self.units(row.unit, row.unit_field)
        if task_no is None or role is None or horizon is None:
            return
        for unit_id in unit_ids:
            self.add(task_no, unit_id, role, horizon, row.unit.line, row.unit_field)

    def division(self, example: bool, note: str) -> Division:
        raise_if(self.problems)
        if not self.out:
            raise DivisionError([Problem(self.file, None, "division", "no responsibilities")])
        ordered = sorted(self.out, key=lambda r: (r.task_no, ROLE_RANK[r.role]))
        return Division(example=example, note=note, responsibilities=ordered)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def load_division(path: str | Path, units: list[Unit], programme: Programme) -> Division:
    """Load a division file (.yaml / .yml or .csv) and check it against units and programme."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _division_csv(path, units, programme)
    return _division_yaml(path, units, programme)


TASK_KEYS = {"task", "lead", "cooperating", "responsible", "except", "horizon_year"}
TOP_KEYS = {"example", "note", "document_no", "horizon_year", "tasks", "responsibilities"}
ROW_KEYS = {"task_no", "unit_id", "role", "horizon_year"}


def _as_list(item: Located) -> list[Located]:
    return item.value if isinstance(item.value, list) else [item]


def _division_yaml(path: Path, units: list[Unit], programme: Programme) -> Division:
    file = str(path)
    root = load_yaml(path)
    if not isinstance(root.value, dict):
        raise DivisionError([Problem(file, root.line, "division", "expected a mapping with tasks:")])
    top: dict[str, Located] = root.value
    check = DivisionChecker(file, units, programme)
    for key in top.keys() - TOP_KEYS:
        check.problem(top[key].line, key, f"unknown field (expected one of {', '.join(sorted(TOP_KEYS))})")
    doc = top.get("document_no")
    if doc and programme.document_no and str(doc.value) != programme.document_no:
        check.problem(doc.line, "document_no", f"'{doc.value}' is not this programme ({programme.document_no})")
    default_horizon = top.get("horizon_year")

    for entry in _entries(top.get("tasks"), check, "tasks"):
        fields: dict[str, Located] = entry.value
        for key in fields.keys() - TASK_KEYS:
            check.problem(fields[key].line, key, f"unknown field (expected one of {', '.join(sorted(TASK_KEYS))})")
        if "task" not in fields:
            check.problem(entry.line, "task", "missing")
            continue
        task_no = check.task(fields["task"].value, fields["task"].line, "task")
        horizon_item = fields.get("horizon_year") or default_horizon
        if horizon_item is None:
            check.problem(entry.line, "horizon_year", "missing (here or at the top of the file)")
            continue
        horizon = check.horizon(horizon_item.value, horizon_item.line, "horizon_year")
        exclude: set[str] = set()
        for ref in _as_list(fields["except"]) if "except" in fields else []:
            exclude.update(check.units(ref, "except"))
        for key, role in (("lead", Role.LEAD), ("cooperating", Role.COOPERATING), ("responsible", Role.RESPONSIBLE)):
            for ref in _as_list(fields[key]) if key in fields and fields[key].value is not None else []:
                for unit_id in check.units(ref, key, exclude):
                    if task_no is not None and horizon is not None:
                        check.add(task_no, unit_id, role, horizon, ref.line, key)

    for entry in _entries(top.get("responsibilities"), check, "responsibilities"):
        fields = entry.value
        for key in fields.keys() - ROW_KEYS:
            check.problem(fields[key].line, key, f"unknown field (expected one of {', '.join(sorted(ROW_KEYS))})")
        missing = [k for k in ("task_no", "unit_id", "role") if k not in fields]
        horizon_item = fields.get("horizon_year") or default_horizon
        if missing or horizon_item is None:
            for k in missing or ["horizon_year"]:
                check.problem(entry.line, k, "missing")
            continue
        row = _Row(
            fields["task_no"].value, fields["unit_id"], fields["role"].value, horizon_item.value, entry.line, "unit_id"
        )
        check.row(row, ("task_no", "role", "horizon_year"))

    example = top.get("example")
    note = top.get("note")
    return check.division(bool(example and example.value), str(note.value) if note and note.value else "")


def _entries(section: Located | None, check: DivisionChecker, name: str) -> Iterator[Located]:
    """The mapping items of a top-level list, reporting anything else."""
    if section is None or section.value is None:
        return
    if not isinstance(section.value, list):
        check.problem(section.line, name, "expected a list")
        return
    for entry in section.value:
        if isinstance(entry.value, dict):
            yield entry
        else:
            check.problem(entry.line, name, "expected a mapping")


CSV_COLUMNS = {
    "task_no": ("task_no", "task"),
    "unit_id": ("unit_id", "unit"),
    "role": ("role",),
    "horizon_year": ("horizon_year", "horizon"),
}


def _division_csv(path: Path, units: list[Unit], programme: Programme) -> Division:
    file = str(path)
    check = DivisionChecker(file, units, programme)
    reader = csv.reader(io.StringIO(read_text(path, legacy_encoding=True)))
    header = next(reader, None)
    if header is None:
        raise DivisionError([Problem(file, None, "file", "empty")])
    names = [h.strip().lower() for h in header]
    columns: dict[str, int] = {}
    for column, spellings in CSV_COLUMNS.items():
        index = next((names.index(s) for s in spellings if s in names), None)
        if index is None:
            check.problem(1, column, f"missing column (the header needs {', '.join(CSV_COLUMNS)})")
        else:
            columns[column] = index
    raise_if(check.problems)

    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record) or record[0].lstrip().startswith("#"):
            continue  # blank lines and comments
        cells = {c: (record[i].strip() if i < len(record) else "") for c, i in columns.items()}
        row = _Row(
            cells["task_no"], Located(cells["unit_id"], line), cells["role"], cells["horizon_year"], line, "unit_id"
        )
        check.row(row, ("task_no", "role", "horizon_year"))
    return check.division(example=False, note="")


# -- the schedule ----------------------------------------------------------------------------


def load_schedule(path: str | Path) -> Schedule:
    """Programme timing: start_year, evaluation_years, and deadline rules (defaults if absent)."""
    path = Path(path)
    file = str(path)
    root = load_yaml(path)
    problems: list[Problem] = []
    schedule = validate(Schedule, root, file, problems)
    if schedule is not None:
        for i, year in enumerate(schedule.evaluation_years):
            if year < schedule.start_year:
                line = line_of(root, ("evaluation_years", i))
                problems.append(Problem(file, line, "evaluation_years", f"{year} is before start_year"))
    raise_if(problems)
    assert schedule is not None
    return schedule
