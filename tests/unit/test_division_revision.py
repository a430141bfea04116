"""The pure parts of a division's changes: the difference a revision makes (ids never used twice,
leads followed), and the workflow's checks and decisions for reassign, remove and revise."""

from __future__ import annotations

import datetime as dt
from typing import Any

from contracts.base import Actor, Role, Stage, UserRole
from contracts.catalog import Responsibility, Schedule
from contracts.commands import AssignmentSpec, ReassignAssignment, ReviseAssignment
from contracts.division_facts import AssignmentReassigned
from contracts.fold import AssignmentState
from services.assignment.revision import next_assignment_id, plan, version
from services.assignment.revision_jobs import past_horizons
from workflows import changes

SUP = Actor(sub="supervisor", role=UserRole.SUPERVISOR)
TODAY = dt.date(2026, 6, 1)


def row(task: int, unit: str, role: str, aid: str | None = None, lead: str | None = None) -> dict[str, Any]:
    return {"assignment_id": aid or f"p.t{task:02d}.{unit}", "task_no": task, "unit_id": unit, "role": role,
            "horizon_year": 2030, "lead_assignment_id": lead}  # fmt: skip


def test_a_unit_taking_a_task_again_gets_the_next_generation() -> None:
    assert next_assignment_id("p", 5, "yuzhong", set()) == "p.t05.yuzhong"
    assert next_assignment_id("p", 5, "yuzhong", {"p.t05.yuzhong"}) == "p.t05.yuzhong.g2"
    assert next_assignment_id("p", 5, "yuzhong", {"p.t05.yuzhong", "p.t05.yuzhong.g2"}) == "p.t05.yuzhong.g3"


def test_the_difference_and_the_leads_that_follow_it() -> None:
    in_force = [row(1, "jw", "lead"), row(1, "fgw", "cooperating", lead="p.t01.jw"), row(1, "yuzhong", "responsible")]
    revised = [
        Responsibility(task_no=1, unit_id="fgw", role=Role.LEAD, horizon_year=2030),  # jw gone, fgw leads
        Responsibility(task_no=1, unit_id="yuzhong", role=Role.COOPERATING, horizon_year=2028),
        Responsibility(task_no=1, unit_id="jw", role=Role.COOPERATING, horizon_year=2030),
    ]
    # jw is in the revised division (as cooperating), so it stays: a change, not a removal.
    d = plan("p", in_force, revised, {"p.t01.jw", "p.t01.fgw", "p.t01.yuzhong"})
    assert (d.added, d.removed) == ([], [])
    assert {(c.after.assignment_id, c.before.role, c.after.role) for c in d.changed} == {
        ("p.t01.fgw", Role.COOPERATING, Role.LEAD), ("p.t01.yuzhong", Role.RESPONSIBLE, Role.COOPERATING),
        ("p.t01.jw", Role.LEAD, Role.COOPERATING)}  # fmt: skip
    assert d.leads == {"p.t01.fgw": None, "p.t01.yuzhong": "p.t01.fgw", "p.t01.jw": "p.t01.fgw"}
    gone = plan("p", in_force, revised[:2], {"p.t01.jw", "p.t01.fgw", "p.t01.yuzhong", "p.t01.wanzhou"})
    assert [line.assignment_id for line in gone.removed] == ["p.t01.jw"]
    back = plan("p", in_force[1:], [*revised[:2], Responsibility(task_no=1, unit_id="jw", role=Role.COOPERATING,
                                                                   horizon_year=2030)], {"p.t01.jw"})  # fmt: skip
    assert [(a.assignment_id, back.new_leads[a.assignment_id]) for a in back.added] == [("p.t01.jw.g2", "p.t01.fgw")]


def test_the_version_moves_with_the_division_in_force_and_the_content() -> None:
    rows = [row(1, "jw", "lead")]
    v = version(0, rows, "a" * 64)
    assert v == version(0, [dict(r) for r in rows], "a" * 64)
    assert len({v, version(1, rows, "a" * 64), version(0, rows, "b" * 64), version(0, [row(1, "jw", "cooperating")],
                                                                                       "a" * 64)}) == 4  # fmt: skip


SPEC = AssignmentSpec(programme_id="p", assignment_id="p.t01.jw", task_no=1, task_title="t", unit_id="jw",
                      role=Role.LEAD, horizon_year=2030, schedule=Schedule(start_year=2026))  # fmt: skip
PLAN = {"year": 2026, "revision": 1, "status": "approved", "milestones": [], "indicators": []}


def state(stage: Stage, plan: dict[str, Any] | None = None) -> AssignmentState:
    return AssignmentState(assignment_id="p.t01.jw", programme_id="p", task_no=1, unit_id="jw", stage=stage,
                           year=2026, horizon_year=2030, plan=plan)  # fmt: skip


def reassign(**more: Any) -> ReassignAssignment:
    fields: dict[str, Any] = {"to_unit": "fgw", "to_assignment_id": "p.t01.fgw", "reason": "职能调整", **more}
    return ReassignAssignment(actor=SUP, **fields)


def test_a_reassignment_carries_what_the_supervisor_chose_and_says_why_it_is_refused() -> None:
    assert changes.reassign(state(Stage.PLANNING), SPEC, reassign(to_unit="jw"), TODAY) == (
        "the assignment is already with unit jw: reassigning needs another unit")  # fmt: skip
    [fact] = changes.decide(state(Stage.IMPLEMENTING, PLAN), SPEC, reassign())
    assert isinstance(fact, AssignmentReassigned) and (fact.handover.accepted, fact.handover.plan) == (True, PLAN)
    [fact] = changes.decide(state(Stage.IMPLEMENTING, PLAN), SPEC, reassign(carry_plan=False))
    assert isinstance(fact, AssignmentReassigned) and (fact.handover.accepted, fact.handover.plan) == (True, None)
    [fact] = changes.decide(state(Stage.ASSIGNED), SPEC, reassign())
    assert isinstance(fact, AssignmentReassigned) and fact.handover.accepted is False  # nothing to carry
    returned = {**PLAN, "status": "returned"}
    [fact] = changes.decide(state(Stage.PLANNING, returned), SPEC, reassign())
    assert isinstance(fact, AssignmentReassigned) and fact.handover.plan is None  # only an approved plan


def test_a_revision_is_refused_in_words() -> None:
    early = ReviseAssignment(actor=SUP, reason="r", changed=["horizon_year"], horizon_year=2025)
    assert changes.revise(state(Stage.PLANNING), SPEC, early, TODAY) == (
        "horizon 2025 is before the year being worked on, 2026")  # fmt: skip
    no_role = ReviseAssignment(actor=SUP, reason="r", changed=["role"])
    assert changes.revise(state(Stage.PLANNING), SPEC, no_role, TODAY) == "a changed role needs the new `role`"


def test_a_dry_run_warns_of_a_horizon_already_past() -> None:
    in_force = [row(1, "jw", "lead"), row(1, "yuzhong", "responsible")]
    revised = [
        Responsibility(task_no=1, unit_id="jw", role=Role.LEAD, horizon_year=2025),  # a slip for 2035
        Responsibility(task_no=1, unit_id="yuzhong", role=Role.RESPONSIBLE, horizon_year=2030),
        Responsibility(task_no=1, unit_id="fgw", role=Role.COOPERATING, horizon_year=2024),
    ]
    d = plan("p", in_force, revised, {"p.t01.jw", "p.t01.yuzhong"})
    assert past_horizons(d, 2026) == [
        "p.t01.fgw: horizon 2024 is before this year 2026, so it has no year left to work in; check the year before "
        "applying",
        "p.t01.jw: horizon 2025 is before this year 2026, so it has no year left to work in; check the year before "
        "applying",
    ]
    assert past_horizons(d, 2024) == []
