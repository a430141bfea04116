"""A signal that reaches an assignment while its year ends.

A cooperating unit's report can reach its lead while the lead's verification is being
published and the run is about to continue as new. The report must become a fact of the
assignment, after the verification, and the verifier must get the verification's events back.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client

from contracts.commands import (
    SIGNAL_COOPERATING_REPORT,
    AcceptAssignment,
    CooperatingReport,
    RequestVerification,
    ReviewAnnualPlan,
    VerifyYear,
)
from contracts.fold import fold
from contracts.ids import workflow_id
from tests.integration.conftest import (
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
    unique_unit,
    wait_for_new_run,
    worker_with,
)
from tests.support.clock import china_today
from workflows.activities import PUBLISH_EVENTS, EventPublisher, Published, PublishEvents


class SignalDuringVerification(EventPublisher):
    """Publishes as usual; the first time a batch holds a verification's events, a cooperating
    report is signalled to that workflow first, and the publish waits for it to arrive."""

    def __init__(self, kit: Kit, client: Client) -> None:
        super().__init__(kit.js)
        self.client = client
        self.signalled: CooperatingReport | None = None

    @activity.defn(name=PUBLISH_EVENTS)
    async def publish_events(self, batch: PublishEvents) -> Published:
        first = batch.events[0]
        if self.signalled is None and any(e.type == "VerificationPassed" for e in batch.events):
            self.signalled = CooperatingReport(
                from_assignment_id=f"{first.assignment_id}-coop",
                from_unit_id="coop",
                year=china_today().year,
                period=f"{china_today().year}-Q4",
                percent=100.0,
                narrative="done as well",
            )
            assert first.assignment_id is not None
            handle = self.client.get_workflow_handle(workflow_id(first.assignment_id))
            await handle.signal(SIGNAL_COOPERATING_REPORT, self.signalled)
            await asyncio.sleep(0.3)  # the signal is now in history, after this task started
        return await super().publish_events(batch)


async def to_verification(h: Handle, unit: str, year: int, report_q4: bool = False) -> str:
    """Accept, plan, approval (a Q4 report), verification request; returns the run's id."""
    me = department(unit)
    await send(h, AcceptAssignment(actor=me))
    await send(h, plan(unit, year))
    await send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"))
    if report_q4:
        await send(h, report(unit, f"{year}-Q4", 100.0))
    await send(h, RequestVerification(actor=me))
    run_id = (await h.describe()).run_id
    assert run_id is not None
    return run_id


async def test_a_signal_during_the_verification_task_loses_nothing(dev_kit: Kit) -> None:
    year = china_today().year
    unit = unique_unit()
    publisher = SignalDuringVerification(dev_kit, dev_kit.client)
    queue = f"{dev_kit.task_queue}-signal"
    kit = Kit(dev_kit.client, dev_kit.js, queue)
    async with worker_with(kit, publisher):
        spec = make_spec(unit, year, year + 1)
        h = await kit.start(spec)
        run_id = await to_verification(h, unit, year, report_q4=True)

        # The verifier is told what happened: it passed, and the assignment moved on.
        passed = await send(h, VerifyYear(actor=VERIFIER, decision="pass"))
        assert publisher.signalled is not None
        assert (passed.stage, passed.year) == ("planning", year + 1)
        await wait_for_new_run(h, run_id)
        after = await idle(h)

        events = await kit.events(spec.assignment_id)
        types = [e.type for e in events]
        # Each fact once, in sequence; the verification's events are the ones the verifier got back.
        assert [e.seq for e in events] == list(range(len(events))), types
        assert types.count("VerificationPassed") == 1
        assert [e.event_id for e in events if e.event_id in passed.event_ids] == passed.event_ids
        # The report signalled meanwhile became its fact, after the verification.
        coop = [e for e in events if e.type == "CooperatingReportReceived"]
        assert len(coop) == 1 and coop[0].seq > events[types.index("VerificationPassed")].seq
        assert coop[0].fact().model_dump()["narrative"] == "done as well"
        # The workflow's state is the fold of the stream.
        folded = fold(events)
        assert folded is not None
        assert (after.stage, after.year, after.last_seq) == (folded.stage, folded.year, folded.last_seq)
        await h.terminate("test over")


async def test_a_command_as_the_year_ends_is_answered_without_a_timer(dev_kit: Kit) -> None:
    """The next year's plan, sent as soon as the verification answered, is taken by the run that
    is ending or by the next one; either way it is published and answered without waiting for a timer."""
    year = china_today().year
    unit = unique_unit()
    spec = make_spec(unit, year, year + 1)
    h = await dev_kit.start(spec)
    run_id = await to_verification(h, unit, year)
    await send(h, VerifyYear(actor=VERIFIER, decision="pass"))
    submitted = await send(h, plan(unit, year + 1))
    assert (submitted.stage, submitted.year) == ("plan_submitted", year + 1)
    await wait_for_new_run(h, run_id)

    history = await dev_kit.client.get_workflow_handle(h.id, run_id=run_id).fetch_history()
    kinds = [e.WhichOneof("attributes") for e in history.events]
    accepted = [i for i, k in enumerate(kinds) if k == "workflow_execution_update_accepted_event_attributes"]
    completed = [i for i, k in enumerate(kinds) if k == "workflow_execution_update_completed_event_attributes"]
    assert kinds[-1] == "workflow_execution_continued_as_new_event_attributes"
    # Each update the run took completed within the run, without a timer firing in between.
    assert len(accepted) == len(completed) >= 5, kinds
    for a, c in zip(accepted, completed, strict=True):
        assert "timer_fired_event_attributes" not in kinds[a:c], kinds[a : c + 1]
    events = await dev_kit.events(spec.assignment_id)
    assert [e.seq for e in events] == list(range(len(events)))
    await h.terminate("test over")
