"""Every refused command: the reason a person can act on, and no trace in history or stream.

On the real dev server: it runs update validators in speculative workflow tasks, so a refused
update leaves the history exactly as it was (the time-skipping test server would record the
workflow task).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contracts.base import Actor, UserRole
from contracts.commands import (
    AcceptAssignment,
    CancelAssignment,
    ReportProgress,
    RequestVerification,
    ReviewAnnualPlan,
    SubmitAnnualPlan,
    VerifyYear,
)
from contracts.events import IndicatorTarget, IndicatorValue, Milestone
from tests.integration.conftest import (
    AUDITOR,
    SUPERVISOR,
    VERIFIER,
    Handle,
    Kit,
    department,
    idle,
    make_spec,
    plan,
    report,
    send,
    status,
    unique_unit,
)
from tests.support.clock import china_today, current_period
from workflows.workflows import COMMAND_REJECTED


async def refused(kit: Kit, h: Handle, update: str, cmd: Any, reason: str) -> None:
    await idle(h)
    history = len((await h.fetch_history()).events)
    stream = len(await kit.events(h.id.removeprefix("assignment-")))
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update(update, cmd)
    cause = err.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == reason
    assert cause.type == COMMAND_REJECTED
    assert len((await h.fetch_history()).events) == history
    assert len(await kit.events(h.id.removeprefix("assignment-"))) == stream


async def test_refused_commands_at_every_stage(dev_kit: Kit) -> None:
    kit = dev_kit
    today = china_today()
    year = today.year
    unit, other = unique_unit(), unique_unit()
    me, stranger = department(unit), department(other)
    spec = make_spec(unit, year, year + 1)
    aid = spec.assignment_id
    h = await kit.start(spec)
    # Sent with the start, before the workflow has created the assignment: refused all the same.
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"))
    assert early.value.cause.message == f"no annual plan for {year} awaits review: stage is assigned for {year}"  # type: ignore[attr-defined]
    period = current_period(today)

    # assigned
    await refused(
        kit, h, "submit_plan", plan(unit, year), f"annual plan for {year} is not open: stage is assigned for {year}"
    )
    await refused(
        kit,
        h,
        "accept",
        AcceptAssignment(actor=SUPERVISOR),
        f"accepting the assignment must come from unit {unit}; sup-1 has role supervisor",
    )
    await refused(
        kit,
        h,
        "accept",
        AcceptAssignment(actor=stranger),
        f"accepting the assignment must come from unit {unit}; {other}-clerk belongs to unit {other}",
    )
    await refused(
        kit,
        h,
        "review_plan",
        ReviewAnnualPlan(actor=me, year=year, decision="approve"),
        f"reviewing a plan is for supervisors; {unit}-clerk has role department",
    )
    await refused(
        kit,
        h,
        "verify",
        VerifyYear(actor=AUDITOR, decision="pass"),
        "verification is for verifiers and supervisors; aud-1 has role auditor",
    )
    await refused(
        kit,
        h,
        "cancel",
        CancelAssignment(actor=VERIFIER, reason="x"),
        "cancelling is for supervisors; ver-1 has role verifier",
    )
    await send(h, AcceptAssignment(actor=me))

    # planning
    await refused(
        kit, h, "accept", AcceptAssignment(actor=me), f"assignment is already accepted: stage is planning for {year}"
    )
    await refused(
        kit,
        h,
        "submit_plan",
        plan(unit, year + 1),
        f"annual plan for {year + 1} is not open: stage is planning for {year}",
    )
    late = SubmitAnnualPlan(actor=me, year=year, milestones=[Milestone(title="survey", due=dt.date(year + 1, 3, 1))])
    await refused(
        kit, h, "submit_plan", late, f"milestone 'survey' is due {year + 1}-03-01, outside the plan year {year}"
    )
    twice = plan(unit, year).model_copy(
        update={"indicators": [IndicatorTarget(name="a", target=1), IndicatorTarget(name="a", target=2)]}
    )
    await refused(kit, h, "submit_plan", twice, "indicator 'a' appears more than once in the plan")
    await refused(
        kit,
        h,
        "report_progress",
        report(unit, period, 10),
        f"progress for {period} cannot be reported: stage is planning for {year}",
    )
    await send(h, plan(unit, year))

    # plan_submitted
    await refused(
        kit,
        h,
        "review_plan",
        ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="return", comment="  "),
        "returning a plan needs the reasons in `comment`, so the unit knows what to change",
    )
    await refused(
        kit,
        h,
        "review_plan",
        ReviewAnnualPlan(actor=SUPERVISOR, year=year + 1, decision="approve"),
        f"no annual plan for {year + 1} awaits review: stage is plan_submitted for {year}",
    )
    await send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"))

    # implementing
    await refused(
        kit,
        h,
        "report_progress",
        report(unit, f"{year + 1}-Q1", 10),
        f"progress for {year + 1}-Q1 cannot be reported: the assignment is working on {year}",
    )
    unknown = ReportProgress(
        actor=me, period=period, percent=10, narrative="n", indicator_values=[IndicatorValue(name="trees", value=3)]
    )
    await refused(
        kit,
        h,
        "report_progress",
        unknown,
        f"indicator 'trees' is not in the approved plan for {year} "
        "(plan indicators: green building share of new buildings)",
    )
    await refused(
        kit,
        h,
        "report_progress",
        report(other, period, 10),
        f"a progress report must come from unit {unit}; {other}-clerk belongs to unit {other}",
    )
    await refused(
        kit,
        h,
        "verify",
        VerifyYear(actor=VERIFIER, decision="pass"),
        f"nothing awaits verification: stage is implementing for {year}",
    )
    await send(h, report(unit, period, 10))
    await send(h, RequestVerification(actor=me))

    # verifying
    await refused(
        kit,
        h,
        "request_verification",
        RequestVerification(actor=me),
        f"verification for {year} cannot be requested: stage is verifying for {year}",
    )
    await refused(
        kit,
        h,
        "verify",
        VerifyYear(actor=VERIFIER, decision="fail"),
        "a failed verification needs `findings`, so the unit knows what to rework",
    )
    await refused(
        kit,
        h,
        "verify",
        VerifyYear(actor=VERIFIER, decision="fail", findings="f", score=50),
        "a failed verification has no score: the evaluation score comes with the pass",
    )
    await refused(
        kit,
        h,
        "verify",
        VerifyYear(actor=VERIFIER, decision="pass", score=80),
        f"{year} is not an evaluation year: leave the score out",
    )
    await send(h, CancelAssignment(actor=SUPERVISOR, reason="merged into task 15"))

    # cancelled (the workflow stays open for a while to say so)
    closed = f"assignment {aid} is cancelled (merged into task 15): it takes no further commands"
    await refused(kit, h, "request_verification", RequestVerification(actor=me), closed)
    await refused(kit, h, "cancel", CancelAssignment(actor=SUPERVISOR, reason="again"), closed)
    await refused(
        kit,
        h,
        "accept",
        AcceptAssignment(actor=stranger),
        f"accepting the assignment must come from unit {unit}; {other}-clerk belongs to unit {other}",
    )
    assert (await status(h)).stage == "cancelled"
    await h.terminate("test over")


async def test_malformed_input_is_refused_before_the_validator(dev_kit: Kit) -> None:
    """Content that does not even parse (percent 150, a bad sha256) is refused the same way."""
    year = china_today().year
    unit = unique_unit()
    h = await dev_kit.start(make_spec(unit, year, year))
    await idle(h)
    history = len((await h.fetch_history()).events)
    actor = Actor(sub="x", role=UserRole.DEPARTMENT, unit_id=unit).model_dump()
    bad = {"actor": actor, "period": f"{year}-Q1", "percent": 150, "narrative": "n"}
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update("report_progress", bad)
    causes: list[str] = []
    cause: BaseException | None = err.value.cause
    while cause is not None:
        causes.append(str(cause))
        cause = getattr(cause, "cause", None)  # a FailureError names the failure it wraps
    assert "less than or equal to 100" in " / ".join(causes), causes
    assert len((await h.fetch_history()).events) == history
    await h.terminate("test over")
