"""The difference between a programme's division in force and a revised one. Pure: rows in, plan out.

A responsibility is a (task, unit) pair. One in the revised division and not in force is added,
with a new assignment id (an id is never used twice: a unit removed and added again gets the next
generation, `….t05.yuzhong.g2`); one in force and not in the revised division is removed; one in
both with another role or horizon is changed. Cooperating units point at their task's lead
assignment: the lead in force if it stays lead, else the first lead the revised division lists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.base import Role
from contracts.catalog import Responsibility
from contracts.division_facts import DivisionChange, DivisionLine
from contracts.ids import assignment_id


def next_assignment_id(programme_id: str, task_no: int, unit_id: str, used: Collection[str]) -> str:
    """The unit's id on the task, or its next generation when that id was used before."""
    base = assignment_id(programme_id, task_no, unit_id)
    if base not in used:
        return base
    generation = 2
    while f"{base}.g{generation}" in used:
        generation += 1
    return f"{base}.g{generation}"


def line_of(row: dict[str, Any]) -> DivisionLine:
    return DivisionLine(
        assignment_id=row["assignment_id"],
        task_no=row["task_no"],
        unit_id=row["unit_id"],
        role=Role(row["role"]),
        horizon_year=row["horizon_year"],
    )


@dataclass
class Plan:
    """What applying a revised division does: the lines of its ProgrammeRevised fact, and the lead
    each cooperating assignment should point at afterwards (those that change)."""

    added: list[DivisionLine] = field(default_factory=list)
    removed: list[DivisionLine] = field(default_factory=list)
    changed: list[DivisionChange] = field(default_factory=list)
    leads: dict[str, str | None] = field(default_factory=dict)  # assignment id -> its new lead assignment id
    new_leads: dict[str, str | None] = field(default_factory=dict)  # the added ones' lead assignment ids

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.leads)


def plan(
    programme_id: str,
    in_force: Sequence[dict[str, Any]],
    revised: Iterable[Responsibility],
    used: Collection[str],
) -> Plan:
    """The difference from the rows in force (responsibility rows) to the revised responsibilities."""
    current = {(r["task_no"], r["unit_id"]): r for r in in_force}
    wanted = {(r.task_no, r.unit_id): r for r in revised}
    out = Plan()
    taken = set(used)
    ids: dict[tuple[int, str], str] = {}
    for key, r in wanted.items():
        row = current.get(key)
        if row is None:
            new_id = next_assignment_id(programme_id, r.task_no, r.unit_id, taken)
            taken.add(new_id)
            ids[key] = new_id
            out.added.append(DivisionLine(assignment_id=new_id, task_no=r.task_no, unit_id=r.unit_id, role=r.role,
                                          horizon_year=r.horizon_year))  # fmt: skip
            continue
        ids[key] = row["assignment_id"]
        if (Role(row["role"]), row["horizon_year"]) != (r.role, r.horizon_year):
            after = DivisionLine(assignment_id=row["assignment_id"], task_no=r.task_no, unit_id=r.unit_id,
                                 role=r.role, horizon_year=r.horizon_year)  # fmt: skip
            out.changed.append(DivisionChange(before=line_of(row), after=after))
    out.removed = [line_of(row) for key, row in current.items() if key not in wanted]
    _leads(out, current, wanted, ids)
    return out


def _leads(
    out: Plan,
    current: dict[tuple[int, str], dict[str, Any]],
    wanted: dict[tuple[int, str], Responsibility],
    ids: dict[tuple[int, str], str],
) -> None:
    """Each task's lead assignment after the revision, and the cooperating ones whose pointer moves."""
    lead_of: dict[int, str] = {}
    for key, row in current.items():  # a lead in force that stays lead keeps leading
        r = wanted.get(key)
        if row["role"] == Role.LEAD.value and r is not None and r.role == Role.LEAD:
            lead_of.setdefault(key[0], ids[key])
    for key, r in wanted.items():
        if r.role == Role.LEAD:
            lead_of.setdefault(key[0], ids[key])
    added = {line.assignment_id for line in out.added}
    for key, r in wanted.items():
        target = lead_of.get(key[0]) if r.role == Role.COOPERATING else None
        aid = ids[key]
        if aid in added:
            out.new_leads[aid] = target
        elif current[key]["lead_assignment_id"] != target:
            out.leads[aid] = target


def version(revision: int, in_force: Sequence[dict[str, Any]], content_sha256: str) -> str:
    """Names the division in force and the revised content: it changes when either does, so an apply
    with a dry run's version refuses when the division moved in between."""
    lines = sorted((r["assignment_id"], r["role"], r["horizon_year"], r["lead_assignment_id"] or "") for r in in_force)
    text = json.dumps([revision, lines, content_sha256], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
