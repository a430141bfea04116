"""WorkingCalendarWorkflow: one per year, the owner of that year's published working calendar.

Each publication (a signal, as `policyflow calendar publish` or the HTTP endpoint sends it) becomes
a WorkingCalendarPublished event in the stream `programme:calendar-YEAR` (its sequence is the
revision, so a republication is audited as the next one), and then an activity signals every
running assignment with it, heartbeating how many it has told. A publication arriving meanwhile
waits its turn; the latest one is what the assignments end up with.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.events import WorkingCalendarPublished, make_event
    from contracts.working_calendar import (
        CALENDAR_WORKFLOW_NAME,
        QUERY_CALENDAR,
        SIGNAL_PUBLISH_CALENDAR,
        CalendarPublication,
        CalendarStatus,
        PublishedCalendar,
        calendar_stream,
    )
    from workflows.calendar_fanout import CalendarFanOut, FanOutRequest, FanOutResult
    from workflows.publishing import publish


class CalendarInput(BaseModel):
    year: int
    revision: int = 0
    calendar: PublishedCalendar | None = None
    pending: list[CalendarPublication] = []


@workflow.defn(name=CALENDAR_WORKFLOW_NAME)
class WorkingCalendarWorkflow:
    @workflow.init
    def __init__(self, input: CalendarInput) -> None:
        self._year = input.year
        self._revision = input.revision
        self._calendar = input.calendar
        self._pending = list(input.pending)
        self._state: Literal["none", "queued", "signalling", "done"] = "done" if input.calendar else "none"
        self._last = FanOutResult()

    @workflow.run
    async def run(self, input: CalendarInput) -> None:  # noqa: ARG002 - read by __init__
        while True:
            await workflow.wait_condition(lambda: bool(self._pending))
            publication = self._pending.pop(0)
            await self._record(publication)
            self._state = "signalling"
            self._last = await workflow.execute_activity_method(
                CalendarFanOut.signal_assignments,
                FanOutRequest(calendar=publication.calendar),
                start_to_close_timeout=dt.timedelta(hours=6),
                heartbeat_timeout=dt.timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_interval=dt.timedelta(minutes=1)),
            )
            self._state = "done" if not self._pending else "queued"
            if not self._pending and workflow.info().is_continue_as_new_suggested():
                carried = CalendarInput(year=self._year, revision=self._revision, calendar=self._calendar)
                workflow.continue_as_new(carried)

    async def _record(self, publication: CalendarPublication) -> None:
        c = publication.calendar
        fact = WorkingCalendarPublished(
            year=c.year, revision=self._revision + 1, holidays=c.holidays, workdays=c.workdays, source=c.source,
            replaces=self._calendar.source if self._calendar else None,
        )  # fmt: skip
        event = make_event(
            fact, seq=self._revision, occurred_at=workflow.now(), programme_id=calendar_stream(c.year),
            actor=publication.actor,
        )  # fmt: skip
        await publish([event])
        self._revision, self._calendar = self._revision + 1, c

    @workflow.signal(name=SIGNAL_PUBLISH_CALENDAR)
    def publish_calendar(self, publication: CalendarPublication) -> None:
        self._pending.append(publication)
        if self._state != "signalling":
            self._state = "queued"

    @workflow.query(name=QUERY_CALENDAR)
    def status(self) -> CalendarStatus:
        return CalendarStatus(
            year=self._year, published=self._calendar is not None, revision=self._revision, calendar=self._calendar,
            state="queued" if self._pending and self._state != "signalling" else self._state,
            signalled=self._last.signalled, failed=self._last.failed,
        )  # fmt: skip
