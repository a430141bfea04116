"""The division a document states itself, in its notes or annexed table, as responsibility rows.

Names are matched to the unit registry as `programme propose-division` matches them
(unit_names.py): exact, then the genre's known short forms, then a set of district-level units.
Nothing is matched by guess: a name matched by none is a problem, pointing at the line of its
first note, with the closest registry name as a suggestion.
"""

from __future__ import annotations

from collections.abc import Callable

from contracts.catalog import Division, Programme, Unit
from services.assignment.division import ROLE_RANK, DivisionChecker
from services.assignment.source_files import raise_if
from services.assignment.unit_names import SHORT_FORM, UnitNames


def division_from_notes(
    programme: Programme,
    units: list[Unit],
    horizon_year: int,
    source: str,
    notes: list[str] | None = None,
    where: Callable[[str, int], tuple[str, int]] | None = None,
) -> Division:
    """The division the document's notes state, names matched as propose-division matches them
    (unit_names.py: exact, known short form, district set); a name matched by none is reported
    once with its tasks and the closest registry name. `notes` receives the short-form reads;
    `where` gives a name's task label and line in the text, for the problems to point at."""
    check = DivisionChecker(source, units, programme)
    names = UnitNames(units)
    unknown: dict[str, list[int]] = {}
    suggestion: dict[str, str] = {}
    for task in programme.tasks():
        for named in task.responsibilities:
            found = names.match(named.unit)
            if not found.unit_ids:
                unknown.setdefault(named.unit, []).append(task.no)
                suggestion[named.unit] = found.suggestion
                continue
            if found.how == SHORT_FORM and notes is not None:
                unit = names.name_of(found.unit_ids[0])
                read = f"'{named.unit}' read as {unit} ({found.unit_ids[0]}), a known short form"
                notes.extend([read] if read not in notes else [])
            for unit_id in found.unit_ids:
                # a district named on its own keeps its own role beside 各区县; a unit is named once
                if (task.no, unit_id) not in check.seen:
                    check.add(task.no, unit_id, named.role, horizon_year, 0, f"task {task.no}")
    if unknown and not units:
        listed = "、".join(unknown)
        check.problem(None, "units", f"no unit registry (units file) given for the units the text names ({listed})")
    for name, tasks in unknown.items() if units else ():
        hint = f"; closest registry name: '{suggestion[name]}'" if suggestion[name] else ""
        named_in = ", ".join(f"{t} [{where(name, t)[0]}]" if where else str(t) for t in tasks)
        line = where(name, tasks[0])[1] if where else None
        check.problem(line, "unit", f"unknown unit '{name}' (named in tasks {named_in}{hint})")
    raise_if(check.problems)
    ordered = sorted(check.out, key=lambda r: (r.task_no, ROLE_RANK[r.role]))
    return Division(example=False, note=f"as stated in the notes of {source}", responsibilities=ordered)
