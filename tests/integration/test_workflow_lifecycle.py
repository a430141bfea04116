"""The assignment lifecycle on the time-skipping server, publishing to a real nats-server.

Dates come from the test server's clock (the real present when the test starts), so each
test computes its expectations from it with an independent working-day count on `holidays`.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contracts.base import Role, Stage
from contracts.commands import (
    AcceptAssignment,
    CancelAssignment,
    RequestVerification,
    ReviewAnnualPlan,
    SubmitSelfEvaluation,
    VerifyYear,
)
from contracts.fold import AssignmentState, fold
from tests.integration.conftest import (
    SUPERVISOR,
    VERIFIER,
    Handle,
    Kit,
    department,
    independent_add_working_days,
    make_spec,
    of_type,
    plan,
    report,
    send,
    status,
    wait_for_new_run,
)
from tests.support.clock import current_period
from workflows.deadlines import quarter_end


async def test_full_lifecycle_from_now_to_a_ten_year_horizon(kit: Kit) -> None:
    """Plans, quarterly reports and verification every year, continue-as-new at each year."""
    first = (await kit.today()).year
    horizon = first + 9  # 2026 -> 2035 when run in 2026
    evaluations = {first + 4: 81.0, first + 9: 92.5}
    unit = "yuzhong"
    spec = make_spec(unit, first, horizon, evaluation_years=sorted(evaluations))
    h = await kit.start(spec)
    run_id = (await h.describe()).run_id
    result = await send(h, AcceptAssignment(actor=department(unit)))
    assert (result.stage, result.year) == ("planning", first)

    reasons: list[str] = []
    for year in range(first, horizon + 1):
        s = await status(h)
        assert (s.stage, s.year) == (Stage.PLANNING, year)
        await send(h, plan(unit, year))
        approved = await send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"))
        assert approved.stage == "implementing"
        for q in (1, 2, 3):
            if f"report:{year}-Q{q}" in (await status(h)).deadlines:
                await kit.sleep_until(quarter_end(year, q) + dt.timedelta(days=3))
                await send(h, report(unit, f"{year}-Q{q}", 25.0 * q))
        if year % 2 and await kit.today() < dt.date(year, 12, 1):  # odd years: declared done in December
            reasons.append("declared_done")
            await kit.sleep_until(dt.date(year, 12, 1))
            await send(h, RequestVerification(actor=department(unit)))
            await kit.sleep_until(dt.date(year, 12, 2))
        else:  # even years: the year end hands it to verification by itself
            reasons.append("year_end")
            await kit.sleep_until(dt.date(year + 1, 1, 6))
        s = await status(h)
        assert (s.stage, s.year) == (Stage.VERIFYING, year)
        verdict = VerifyYear(actor=VERIFIER, decision="pass", findings="ok", score=evaluations.get(year))
        passed = await send(h, verdict)
        if year < horizon:
            assert (passed.stage, passed.year) == ("planning", year + 1)
            run_id = await wait_for_new_run(h, run_id)
        else:
            assert passed.stage == "completed"

    final = await h.result()  # skips the 7-day linger
    assert final.stage == Stage.COMPLETED
    assert final.years_verified == list(range(first, horizon + 1))
    assert final.evaluations == evaluations
    assert final.deadlines == {} and final.overdue_level == "none"

    # One run per year, each with a small history.
    sizes = await run_history_sizes(kit, h)
    assert len(sizes) == horizon - first + 1
    assert max(sizes) < 200, sizes

    # The stream holds every event once, in sequence, with no gap; its fold is the status.
    events = await kit.events(spec.assignment_id)
    assert [e.seq for e in events] == list(range(len(events)))
    assert len({e.event_id for e in events}) == len(events)
    assert final.last_seq == len(events) - 1
    folded = fold(events)
    assert folded is not None
    assert folded.model_dump() == AssignmentState.model_validate(final.model_dump()).model_dump()
    assert len(of_type(events, "VerificationPassed")) == 10
    assert len(of_type(events, "YearStarted")) == 9
    assert [e.payload["year"] for e in of_type(events, "EvaluationRecorded")] == sorted(evaluations)
    assert [e.payload["reason"] for e in of_type(events, "VerificationRequested")] == reasons
    assert "declared_done" in reasons and "year_end" in reasons
    assert of_type(events, "ProgressReported") and of_type(events, "AssignmentCompleted")
    # Every quarterly report was on time: no escalation anywhere.
    assert of_type(events, "SupervisionEscalated") == []


async def run_history_sizes(kit: Kit, h: Handle) -> list[int]:
    """History length of every run of the assignment, newest first, following continue-as-new back."""
    sizes: list[int] = []
    run_id: str | None = (await h.describe()).run_id
    while run_id:
        history = await kit.client.get_workflow_handle(h.id, run_id=run_id).fetch_history()
        sizes.append(len(history.events))
        started = history.events[0]
        assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        run_id = started.workflow_execution_started_event_attributes.continued_execution_run_id or None
    return sizes


async def test_returned_plan_and_failed_verification_loop_back(kit: Kit) -> None:
    today = await kit.today()
    year, unit = today.year, "jiangbei"
    spec = make_spec(unit, year, year + 1)
    h = await kit.start(spec)
    await send(h, AcceptAssignment(actor=department(unit)))
    await send(h, plan(unit, year))

    returned = await send(
        h,
        ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="return", comment="targets need baselines"),
    )
    assert (returned.stage, returned.year) == ("planning", year)
    s = await status(h)
    assert s.plans_returned == 1 and s.plan is not None and s.plan["status"] == "returned"
    assert s.plan["reasons"] == "targets need baselines"
    # The plan is due again within the rework allowance (20 working days) of the return.
    assert s.deadlines[f"annual_plan:{year}"].due == independent_add_working_days(today, 20)

    resubmitted = await send(h, plan(unit, year))
    assert resubmitted.stage == "plan_submitted" and (await status(h)).plan_revision == 2
    await send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"))
    await send(h, RequestVerification(actor=department(unit)))
    failed = await send(h, VerifyYear(actor=VERIFIER, decision="fail", findings="no evidence for Q4"))
    assert (failed.stage, failed.year) == ("implementing", year)
    s = await status(h)
    rework_due = independent_add_working_days(today, 20)
    assert s.verifications_failed == 1 and s.deadlines[f"rework:{year}"].due == rework_due

    # The unit lets the rework slip past New Year: no automatic year-end verification while
    # rework is open, but the rework deadline escalates.
    await kit.sleep_until(independent_add_working_days(rework_due, 2))
    s = await status(h)
    assert s.escalations == {f"rework:{year}": "blue"} and s.overdue_level == "blue"
    if await kit.today() < dt.date(year + 1, 1, 2):
        await kit.sleep_until(dt.date(year + 1, 1, 2))
    s = await status(h)
    assert (s.stage, s.year) == (Stage.IMPLEMENTING, year)
    assert f"rework:{year}" in s.escalations

    again = await send(h, RequestVerification(actor=department(unit), note="evidence added"))
    assert again.stage == "verifying"
    s = await status(h)
    assert s.escalations == {} and s.overdue_level == "none"
    passed = await send(h, VerifyYear(actor=VERIFIER, decision="pass"))
    assert (passed.stage, passed.year) == ("planning", year + 1)

    events = await kit.events(spec.assignment_id)
    types = [e.type for e in events]
    assert types.count("AnnualPlanSubmitted") == 2 and types.count("AnnualPlanReturned") == 1
    assert types.count("VerificationFailed") == 1 and types.count("VerificationPassed") == 1
    assert [e.payload["reason"] for e in of_type(events, "VerificationRequested")] == ["declared_done"] * 2
    assert of_type(events, "VerificationFailed")[0].payload["rework_due"] == rework_due.isoformat()
    cleared = of_type(events, "EscalationCleared")
    assert [e.payload["deadline_key"] for e in cleared] == [f"rework:{year}"]
    assert (
        types.index("EscalationCleared") == types.index("VerificationRequested", types.index("VerificationFailed")) + 1
    )
    assert cleared[0].actor == department(unit)


async def test_a_supervisor_cancels(kit: Kit) -> None:
    year, unit = (await kit.today()).year, "shapingba"
    spec = make_spec(unit, year, year + 3)
    h = await kit.start(spec)
    await send(h, AcceptAssignment(actor=department(unit)))
    assert list((await status(h)).deadlines) == [f"annual_plan:{year}"]
    cancelled = await send(h, CancelAssignment(actor=SUPERVISOR, reason="task merged into task 15"))
    assert cancelled.stage == "cancelled"
    final = await h.result()
    assert final.stage == Stage.CANCELLED and final.cancel_reason == "task merged into task 15"
    assert final.deadlines == {}
    last = (await kit.events(spec.assignment_id))[-1]
    assert last.type == "AssignmentCancelled" and last.actor == SUPERVISOR
    assert last.payload["closes"] == [f"annual_plan:{year}"]


async def test_an_evaluation_year_needs_a_score(kit: Kit) -> None:
    year, unit = (await kit.today()).year, "dadukou"
    spec = make_spec(unit, year, year, evaluation_years=[year])
    h = await kit.start(spec)
    for cmd in [
        AcceptAssignment(actor=department(unit)),
        plan(unit, year),
        ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"),
        SubmitSelfEvaluation(actor=department(unit), year=year, text="基本完成", score=90),
        SubmitSelfEvaluation(actor=department(unit), year=year, text="全部完成", score=92),  # replaces it
        RequestVerification(actor=department(unit)),
    ]:
        await send(h, cmd)
    with pytest.raises(WorkflowUpdateFailedError) as err:  # the unit's self-evaluation (自评) is for an evaluation year
        await send(h, SubmitSelfEvaluation(actor=department(unit), year=year + 1, text="自评", score=90))
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.message.startswith(f"{year + 1} is not a five-year evaluation year of this programme")
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await send(h, VerifyYear(actor=VERIFIER, decision="pass"))
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.message == f"{year} is a five-year evaluation year: passing it needs a `score` (0-100)"

    done = await send(h, VerifyYear(actor=SUPERVISOR, decision="pass", score=87.5, findings="good"))
    assert done.stage == "completed"
    events = await kit.events(spec.assignment_id)
    assert [e.type for e in events[-3:]] == ["VerificationPassed", "EvaluationRecorded", "AssignmentCompleted"]
    assert events[-2].payload["score"] == 87.5 and events[-2].payload["findings"] == "good"
    final = await h.result()
    assert final.evaluations == {year: 87.5}
    assert final.self_evaluation is not None and (
        final.self_evaluation["revision"],
        final.self_evaluation["score"],
    ) == (2, 92)
    selves = of_type(events, "SelfEvaluationSubmitted")
    assert [(e.payload["revision"], e.payload["text"], e.actor.unit_id) for e in selves] == [
        (1, "基本完成", unit), (2, "全部完成", unit)]  # fmt: skip


async def test_a_cooperating_units_report_reaches_the_lead(kit: Kit) -> None:
    today = await kit.today()
    year = today.year
    lead = make_spec("jianwei", year, year + 1, role=Role.LEAD)
    coop = make_spec("yuzhong", year, year + 1, role=Role.COOPERATING, lead=lead.assignment_id)
    lead_h = await kit.start(lead)
    coop_h = await kit.start(coop)
    await send(coop_h, AcceptAssignment(actor=department("yuzhong")))
    await send(coop_h, plan("yuzhong", year))
    await send(coop_h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"))
    period = current_period(today)
    await send(coop_h, report("yuzhong", period, 40))

    # The signal, the lead's workflow task and its publish take a moment, longer on a busy machine.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        received = of_type(await kit.events(lead.assignment_id), "CooperatingReportReceived")
        if received and (await status(lead_h)).cooperating_reports:
            break
        await asyncio.sleep(0.1)
    s = await status(lead_h)
    assert s.cooperating_reports == 1 and s.stage == Stage.ASSIGNED  # the lead need not have accepted yet
    received = of_type(await kit.events(lead.assignment_id), "CooperatingReportReceived")
    assert len(received) == 1
    assert received[0].payload | {"opens": [], "closes": []} == {
        "from_assignment_id": coop.assignment_id,
        "from_unit_id": "yuzhong",
        "year": year,
        "period": period,
        "percent": 40.0,
        "narrative": f"{period}: on track",
        "opens": [],
        "closes": [],
    }
    assert received[0].unit_id == "jianwei" and received[0].actor.unit_id == "yuzhong"


async def test_a_repeated_command_id_returns_the_first_result_and_emits_nothing(kit: Kit) -> None:
    year, unit = (await kit.today()).year, "nanan"
    spec = make_spec(unit, year, year + 1)
    h = await kit.start(spec)
    accept = AcceptAssignment(actor=department(unit), command_id="inbox-click-1")
    first = await send(h, accept)
    second = await send(h, accept)  # a retry: not "already accepted"
    assert second == first
    submit = plan(unit, year).model_copy(update={"command_id": "plan-upload-1"})
    one, two = await asyncio.gather(
        send(h, submit),
        send(h, submit),
    )
    assert one == two
    types = [e.type for e in await kit.events(spec.assignment_id)]
    assert types == ["AssignmentCreated", "AssignmentAccepted", "AnnualPlanSubmitted"]
