"""Facts of changes to the division of work: reassignment (转办), removal and revision of an
assignment, and a revision of the programme's division. Listed in contracts.events.FACT_TYPES.
"""

from __future__ import annotations

from typing import Any, Literal

from contracts.base import Frozen, Role
from contracts.fact_base import Fact


class Handover(Frozen):
    """A reassignment (转办): from which assignment to which, why, and where the receiver starts."""

    from_assignment_id: str
    from_unit_id: str
    to_assignment_id: str
    to_unit_id: str
    reason: str
    accepted: bool = False  # the receiver starts accepted (the old one was, and the supervisor carried it)
    plan: dict[str, Any] | None = None  # this year's approved plan, carried: the receiver starts implementing


class DivisionLine(Frozen):
    """One responsibility as a revision sees it: which assignment carries it."""

    assignment_id: str
    task_no: int
    unit_id: str
    role: Role
    horizon_year: int


class DivisionChange(Frozen):
    before: DivisionLine
    after: DivisionLine


class AssignmentReassigned(Fact):
    """转办: the assignment is closed and continues as `handover.to_assignment_id` with another unit."""

    TYPE = "AssignmentReassigned"
    handover: Handover


class AssignmentRemoved(Fact):
    """A revised division no longer has this responsibility: the assignment is closed."""

    TYPE = "AssignmentRemoved"
    revision: int
    reason: str


class AssignmentRevised(Fact):
    """The responsibility changed while running: role, horizon or the task's lead assignment.

    `changed` names the fields that changed (a lead may change to none)."""

    TYPE = "AssignmentRevised"
    reason: str
    revision: int | None = None
    changed: list[Literal["role", "horizon_year", "lead_assignment_id"]]
    role: Role | None = None
    horizon_year: int | None = None
    lead_assignment_id: str | None = None


class ProgrammeRevised(Fact):
    """The programme's division of work was revised: its number, and what was added, removed, changed."""

    TYPE = "ProgrammeRevised"
    revision: int
    reason: str
    content_sha256: str
    added: list[DivisionLine] = []
    removed: list[DivisionLine] = []
    changed: list[DivisionChange] = []


DIVISION_FACTS: tuple[type[Fact], ...] = (AssignmentReassigned, AssignmentRemoved, AssignmentRevised, ProgrammeRevised)
