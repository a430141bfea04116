"""Published working calendars and the moments an assignment computes deadlines, on the time-skipping server.

* A calendar reaches the assignment while its verification passes: the run publishing the
  verification's events is about to continue as new into the next year, whose plan deadline it
  has just opened on the `holidays` package's calendar. The next run must move that deadline.
* An assignment dispatched after a publication computes its first deadlines on it.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from nats.js import JetStreamContext
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.commands import QUERY_STATUS, VerifyYear
from contracts.ids import workflow_id
from contracts.working_calendar import (
    CALENDAR_WORKFLOW_NAME,
    SIGNAL_CALENDAR_PUBLISHED,
    SIGNAL_PUBLISH_CALENDAR,
    CalendarPublication,
    PublishedCalendar,
    calendar_workflow_id,
)
from services.assignment.dispatch import dispatch
from services.shared import calendars
from tests.integration.conftest import (
    SUPERVISOR,
    VERIFIER,
    Kit,
    idle,
    independent_add_working_days,
    make_spec,
    of_type,
    send,
    status,
    wait_for_new_run,
    worker_with,
)
from tests.integration.test_workflow_signal_at_year_end import to_verification
from tests.support.waiting import until
from workflows.activities import PUBLISH_EVENTS, EventPublisher, Published, PublishEvents
from workflows.calendar import china_year
from workflows.calendar_workflow import CalendarInput
from workflows.models import AssignmentStatus


@pytest.fixture
async def ts_kit(ts_env: WorkflowEnvironment, jetstream: JetStreamContext, task_queue: str) -> Kit:
    return Kit(ts_env.client, jetstream, task_queue, ts_env)


class CalendarDuringVerification(EventPublisher):
    """The first batch holding VerificationPassed waits until a calendar signal is in the history."""

    def __init__(self, kit: Kit, client: Client, calendar: PublishedCalendar) -> None:
        super().__init__(kit.js)
        self.client, self.calendar, self.signalled = client, calendar, False

    @activity.defn(name=PUBLISH_EVENTS)
    async def publish_events(self, batch: PublishEvents) -> Published:
        first = batch.events[0]
        if not self.signalled and any(e.type == "VerificationPassed" for e in batch.events):
            assert first.assignment_id is not None
            handle = self.client.get_workflow_handle(workflow_id(first.assignment_id))
            await handle.signal(SIGNAL_CALENDAR_PUBLISHED, self.calendar)
            self.signalled = True
            await asyncio.sleep(0.3)  # the signal is now in history, after this task started
        return await super().publish_events(batch)


async def test_a_calendar_signalled_as_the_year_turns_moves_the_new_years_plan_deadline(ts_kit: Kit) -> None:
    kit = Kit(ts_kit.client, ts_kit.js, f"{ts_kit.task_queue}-calendar", ts_kit.env)
    year = (await kit.today()).year
    unit = "tongnan"
    nxt = year + 1
    # The package's plan deadline of next year: its January's last working day.
    package = china_year(nxt)
    due = independent_add_working_days(dt.date(nxt, 2, 1), -1)
    published = PublishedCalendar(
        year=nxt, holidays=sorted({*package.days_off, due}), workdays=package.make_up_workdays,
        source=f"国办发明电〔{year}〕9号",
    )  # fmt: skip
    publisher = CalendarDuringVerification(kit, kit.client, published)
    async with worker_with(kit, publisher):
        spec = make_spec(unit, year, nxt)
        h = await kit.start(spec)
        run_id = await to_verification(h, unit, year)
        passed = await send(h, VerifyYear(actor=VERIFIER, decision="pass"))
        assert publisher.signalled and (passed.stage, passed.year) == ("planning", nxt)
        await wait_for_new_run(h, run_id)
        await idle(h)
        key = f"annual_plan:{nxt}"
        expected = independent_add_working_days(due, -1)
        assert (await status(h)).deadlines[key].due == expected
        [moved] = of_type(await kit.events(spec.assignment_id), "DeadlinesRecomputed")
        assert moved.payload["source"] == published.source
        assert [(m["key"], m["old_due"], m["new_due"]) for m in moved.payload["moved"]] == [
            (key, due.isoformat(), expected.isoformat())
        ]
        await h.terminate("test over")


async def test_an_assignment_dispatched_after_a_publication_starts_on_the_published_calendar(kit: Kit) -> None:
    today = await kit.today()
    due = independent_add_working_days(today, 10)  # acceptance, on the package's calendar
    package = china_year(due.year)
    published = PublishedCalendar(
        year=due.year, holidays=sorted({*package.days_off, due}), workdays=package.make_up_workdays,
        source=f"国办发明电〔{due.year - 1}〕3号",
    )  # fmt: skip
    await kit.client.start_workflow(
        CALENDAR_WORKFLOW_NAME, CalendarInput(year=due.year), id=calendar_workflow_id(due.year),
        task_queue=kit.task_queue, start_signal=SIGNAL_PUBLISH_CALENDAR,
        start_signal_args=[CalendarPublication(calendar=published, actor=SUPERVISOR)],
    )  # fmt: skip

    async def recorded() -> bool:
        state = await calendars.calendar_state(kit.client, due.year)
        return state is not None and state.calendar == published

    await until(recorded, "the publication is recorded")
    spec = make_spec("dazu", today.year, today.year + 1)
    outcome = await dispatch(kit.client, kit.task_queue, [spec], SUPERVISOR)
    assert (outcome.started, outcome.failed) == (1, [])
    h = kit.client.get_workflow_handle(workflow_id(spec.assignment_id))
    expected = independent_add_working_days(due, 1)  # the published holiday is skipped
    assert (await h.query(QUERY_STATUS, result_type=AssignmentStatus)).deadlines["acceptance"].due == expected
    events = await kit.events(spec.assignment_id)
    assert [o["due"] for o in events[0].payload["opens"]] == [expected.isoformat()]
    assert of_type(events, "DeadlinesRecomputed") == []  # on it from the start, nothing moved
    await h.terminate("test over")
