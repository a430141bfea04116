"""The fold of the division's changes: a reassignment (转办), a removal, a revised role, horizon or
lead, and where a reassigned assignment starts."""

from __future__ import annotations

import datetime as dt

from contracts import division_facts as dv
from contracts import events as ev
from contracts.base import Role, Stage
from contracts.fold import fold
from tests.unit.test_fold import AID, deadline, event

PLAN = {"year": 2026, "revision": 2, "status": "approved", "milestones": [], "indicators": []}


def created(handover: dv.Handover | None = None, revision: int | None = None) -> ev.AssignmentCreated:
    return ev.AssignmentCreated(task_title="t", role=Role.COOPERATING, start_year=2026, horizon_year=2030,
                                lead_assignment_id="p.t14.jw", handover=handover, revision=revision,
                                opens=[deadline("acceptance")])  # fmt: skip


def handover(accepted: bool = False, plan: dict[str, object] | None = None) -> dv.Handover:
    return dv.Handover(from_assignment_id=AID, from_unit_id="yuzhong", to_assignment_id="p.t14.jiangbei",
                       to_unit_id="jiangbei", reason="职能调整", accepted=accepted, plan=plan)  # fmt: skip


def test_a_reassigned_assignment_closes_with_the_reason_and_a_pointer() -> None:
    s = fold([event(created(), 0), event(dv.AssignmentReassigned(handover=handover(), closes=["acceptance"]), 1)])
    assert s is not None and (s.stage, s.deadlines) == (Stage.CANCELLED, {})
    assert s.reassigned_to == handover() and s.cancel_reason == "转办至 jiangbei（p.t14.jiangbei）：职能调整"


def test_the_new_assignment_starts_where_the_old_stood_as_chosen() -> None:
    fresh = fold([event(created(handover()), 0)])
    accepted = fold([event(created(handover(accepted=True)), 0)])
    planned = fold([event(created(handover(accepted=True, plan=PLAN)), 0)])
    old_plan = fold([event(created(handover(accepted=True, plan={**PLAN, "year": 2025})), 0)])
    assert fresh is not None and (fresh.stage, fresh.reassigned_from) == (Stage.ASSIGNED, handover())
    assert accepted is not None and accepted.stage == Stage.PLANNING
    assert planned is not None and (planned.stage, planned.plan, planned.plan_revision) == (
        Stage.IMPLEMENTING, PLAN, 2)  # fmt: skip
    assert old_plan is not None and (old_plan.stage, old_plan.plan) == (Stage.PLANNING, None)  # not this year's


def test_a_removal_and_a_revision_change_what_they_name() -> None:
    removed = dv.AssignmentRemoved(revision=3, reason="removed in revision 3", closes=["acceptance"])
    s = fold([event(created(revision=1), 0), event(removed, 1)])
    assert s is not None and (s.stage, s.cancel_reason, s.revision, s.deadlines) == (
        Stage.CANCELLED, "removed in revision 3", 3, {})  # fmt: skip
    lead_gone = dv.AssignmentRevised(reason="r", revision=2, changed=["lead_assignment_id", "horizon_year"],
                                     horizon_year=2028)  # fmt: skip
    s = fold([event(created(), 0), event(lead_gone, 1)])
    assert s is not None and (s.role, s.horizon_year, s.lead_assignment_id) == (Role.COOPERATING, 2028, None)
    to_lead = dv.AssignmentRevised(reason="r", changed=["role"], role=Role.LEAD, horizon_year=2099)
    s = fold([event(created(), 0), event(to_lead, 1)])
    assert s is not None and (s.role, s.horizon_year, s.lead_assignment_id) == (Role.LEAD, 2030, "p.t14.jw")


def test_due_dates_are_untouched_by_a_revision() -> None:
    s = fold([event(created(), 0), event(dv.AssignmentRevised(reason="r", changed=["role"], role=Role.LEAD), 1)])
    assert s is not None and s.deadlines == {"acceptance": deadline("acceptance", dt.date(2026, 2, 3))}
