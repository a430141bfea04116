"""Changes to the division of work, as the assignment workflow sees them: reassignment (转办),
removal by a revision, and a revised role, horizon or lead. Pure: the checks say why a change is
refused, the decisions which facts it makes.

The assignment service keeps the division and sends these commands (rows of
`contracts.command_table.DIVISION_COMMANDS`); a changed lead reaches a running cooperating
assignment this way, as an update in its history, so a replay sees the same change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from contracts.base import Stage
from contracts.commands import AssignmentSpec, Command, ReassignAssignment, RemoveAssignment, ReviseAssignment
from contracts.division_facts import AssignmentReassigned, AssignmentRemoved, AssignmentRevised, Handover
from contracts.events import Fact
from contracts.fold import AssignmentState

Check = Callable[[AssignmentState, AssignmentSpec, Any, dt.date], str | None]


def approved_plan(s: AssignmentState) -> dict[str, Any] | None:
    """This year's approved plan, which a reassignment may carry to the new unit."""
    plan = s.plan
    if plan is None or plan.get("status") != "approved" or plan.get("year") != s.year:
        return None
    return plan


def reassign(_s: AssignmentState, spec: AssignmentSpec, cmd: ReassignAssignment, _today: dt.date) -> str | None:
    if cmd.to_unit == spec.unit_id:
        return f"the assignment is already with unit {spec.unit_id}: reassigning needs another unit"
    if not cmd.reason.strip():
        return "reassigning needs a reason"
    return None


def remove(_s: AssignmentState, _spec: AssignmentSpec, cmd: RemoveAssignment, _today: dt.date) -> str | None:
    return None if cmd.reason.strip() else "removing an assignment needs a reason"


def revise(s: AssignmentState, _spec: AssignmentSpec, cmd: ReviseAssignment, _today: dt.date) -> str | None:
    if "role" in cmd.changed and cmd.role is None:
        return "a changed role needs the new `role`"
    if "horizon_year" in cmd.changed:
        if cmd.horizon_year is None:
            return "a changed horizon needs the new `horizon_year`"
        if cmd.horizon_year < s.year:
            return f"horizon {cmd.horizon_year} is before the year being worked on, {s.year}"
    return None


CHECKS: dict[type[Command], Check] = {
    ReassignAssignment: reassign,
    RemoveAssignment: remove,
    ReviseAssignment: revise,
}


def decide(s: AssignmentState, spec: AssignmentSpec, cmd: Command) -> list[Fact]:
    """The facts of a validated change; every one that closes the assignment closes its deadlines."""
    match cmd:
        case ReassignAssignment():
            accepted = cmd.carry_acceptance and s.stage != Stage.ASSIGNED
            handover = Handover(
                from_assignment_id=spec.assignment_id,
                from_unit_id=spec.unit_id,
                to_assignment_id=cmd.to_assignment_id,
                to_unit_id=cmd.to_unit,
                reason=cmd.reason,
                accepted=accepted,
                plan=approved_plan(s) if cmd.carry_plan and accepted else None,
            )
            return [AssignmentReassigned(handover=handover, closes=sorted(s.deadlines))]
        case RemoveAssignment():
            return [AssignmentRemoved(revision=cmd.revision, reason=cmd.reason, closes=sorted(s.deadlines))]
        case ReviseAssignment():
            return [
                AssignmentRevised(
                    reason=cmd.reason,
                    revision=cmd.revision,
                    changed=cmd.changed,
                    role=cmd.role,
                    horizon_year=cmd.horizon_year,
                    lead_assignment_id=cmd.lead_assignment_id,
                )
            ]
    raise TypeError(f"not a change of the division: {type(cmd).__name__}")
