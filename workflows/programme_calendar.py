"""The programme's own calendar in Temporal: the schedule's short run, and the record workflow.

`ProgrammeCalendarRun` is the action of the Temporal Schedule `programme-<id>-calendar`: it reads
its scheduled time (a backfilled run has the time it stands for), works out what fell due then
(contracts.programme_calendar.due_at) and hands that to the programme's record workflow.

`ProgrammeCalendarRecord` (one per programme, running for good) records each occurrence once: a
BulletinIssued, ScoresSnapshotted or EvaluationOpened event in the stream `programme:calendar-<id>`,
numbered in the order recorded, published by the publishing activity under its event id as
`Nats-Msg-Id`. An occurrence already recorded (a run triggered again, a backfill over dates that
ran) is not recorded again, so a re-run never makes a second event, however late it comes.
"""

from __future__ import annotations

import datetime as dt

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from contracts.base import SYSTEM_ACTOR
    from contracts.calendar_facts import BulletinIssued, EvaluationOpened, ScoresSnapshotted
    from contracts.events import Fact, make_event
    from contracts.programme_calendar import (
        CALENDAR_RECORD_WORKFLOW_NAME,
        CALENDAR_TICK_WORKFLOW_NAME,
        QUERY_RECORDED,
        SIGNAL_RECORD_OCCURRENCES,
        CalendarSpan,
        Occurrence,
        RecordOccurrences,
        calendar_stream,
        due_at,
    )
    from workflows.calendar_record import CalendarRecordHandoff
    from workflows.models import CalendarRecordInput
    from workflows.publishing import publish

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name=CALENDAR_TICK_WORKFLOW_NAME)
class ProgrammeCalendarRun:
    @workflow.run
    async def run(self, span: CalendarSpan) -> list[str]:
        when = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        due = due_at(span, when)
        if due:
            await workflow.execute_activity_method(
                CalendarRecordHandoff.hand_over,
                RecordOccurrences(programme_id=span.programme_id, occurrences=due),
                start_to_close_timeout=dt.timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=dt.timedelta(minutes=1)),
            )
        return [o.key for o in due]


def fact_of(programme_id: str, o: Occurrence) -> Fact:
    if o.kind == "bulletin":
        return BulletinIssued(programme_id=programme_id, period=o.period, due_at=o.due_at)
    if o.kind == "snapshot":
        return ScoresSnapshotted(programme_id=programme_id, year=o.year, due_at=o.due_at)
    return EvaluationOpened(programme_id=programme_id, year=o.year, due_at=o.due_at)


@workflow.defn(name=CALENDAR_RECORD_WORKFLOW_NAME)
class ProgrammeCalendarRecord:
    @workflow.init
    def __init__(self, input: CalendarRecordInput) -> None:
        self._programme_id = input.programme_id
        self._next_seq = input.next_seq
        self._recorded = list(input.recorded)
        self._pending: list[Occurrence] = []

    @workflow.run
    async def run(self, input: CalendarRecordInput) -> None:  # noqa: ARG002 - read by __init__
        while True:
            await workflow.wait_condition(lambda: bool(self._pending))
            batch, self._pending = self._pending, []
            new: list[Occurrence] = []
            for o in batch:
                if o.key not in self._recorded and o.key not in {n.key for n in new}:
                    new.append(o)
            events = [
                make_event(
                    fact_of(self._programme_id, o),
                    seq=self._next_seq + i,
                    occurred_at=workflow.now(),
                    programme_id=calendar_stream(self._programme_id),
                    actor=SYSTEM_ACTOR,
                )  # fmt: skip
                for i, o in enumerate(new)
            ]
            if events:
                await publish(events)
                self._recorded.extend(o.key for o in new)
                self._next_seq += len(events)
            if not self._pending and workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    CalendarRecordInput(
                        programme_id=self._programme_id, next_seq=self._next_seq, recorded=self._recorded
                    )  # fmt: skip
                )

    @workflow.signal(name=SIGNAL_RECORD_OCCURRENCES)
    def record(self, request: RecordOccurrences) -> None:
        self._pending.extend(request.occurrences)

    @workflow.query(name=QUERY_RECORDED)
    def recorded(self) -> list[str]:
        return list(self._recorded)
