"""Activities: publishing events to JetStream, and reading the working calendar.

The workflow decides its facts, records them as events in its history and then schedules
`publish_events` with those events as its input: what is published is exactly what history
holds, and every retry sends the same bytes under the same `Nats-Msg-Id` (the event id), which
the stream drops as a duplicate within its 24h window (contracts.subjects).
"""

from __future__ import annotations

import structlog
from nats.js import JetStreamContext
from pydantic import BaseModel
from temporalio import activity

from contracts.events import Event
from contracts.subjects import EVENT_STREAM, event_subject
from workflows.calendar import YearCalendar, china_year

log = structlog.get_logger("workflows.activities")

PUBLISH_EVENTS = "publish_events"
LOAD_WORKING_CALENDAR = "load_working_calendar"


class PublishEvents(BaseModel):
    """A batch of one assignment's events, in sequence order."""

    events: list[Event]


class Published(BaseModel):
    stream: str
    published: int
    duplicates: int
    last_stream_seq: int | None = None


class CalendarRequest(BaseModel):
    years: list[int]


class CalendarYears(BaseModel):
    years: list[YearCalendar]


class PublishRejected(Exception):
    """The server acked on the wrong stream: a misconfiguration, retried like any failure."""


class EventPublisher:
    """Holds a connected JetStream context; `publish_events` is the activity."""

    def __init__(self, js: JetStreamContext, stream: str = EVENT_STREAM, ack_timeout: float = 5.0) -> None:
        self.js = js
        self.stream = stream
        self.ack_timeout = ack_timeout

    @activity.defn(name=PUBLISH_EVENTS)
    async def publish_events(self, batch: PublishEvents) -> Published:
        info = activity.info()
        bound = log.bind(workflow_id=info.workflow_id, run_id=info.workflow_run_id, attempt=info.attempt)
        published = duplicates = 0
        last: int | None = None
        # One at a time, each ack awaited: the stream keeps the batch in sequence order, and a
        # retry after a partial batch re-sends the same ids, which the stream drops as duplicates.
        for event in batch.events:
            data = event.model_dump_json().encode()
            ack = await self.js.publish(
                event_subject(event.programme_id, event.unit_id, event.type),
                data,
                timeout=self.ack_timeout,
                stream=self.stream,  # Nats-Expected-Stream: fail rather than land elsewhere
                headers={"Nats-Msg-Id": event.event_id},
            )
            if ack.stream != self.stream:
                raise PublishRejected(f"event {event.event_id} acked by stream {ack.stream}, expected {self.stream}")
            duplicates += bool(ack.duplicate)
            published += not ack.duplicate
            last = ack.seq
            activity.heartbeat(event.seq)  # a worker that dies mid-batch is noticed within the heartbeat timeout
            bound.info(
                "event_published",
                assignment_id=event.assignment_id,
                event_id=event.event_id,
                type=event.type,
                stream_seq=ack.seq,
                duplicate=bool(ack.duplicate),
            )
        return Published(stream=self.stream, published=published, duplicates=duplicates, last_stream_seq=last)


@activity.defn(name=LOAD_WORKING_CALENDAR)
async def load_working_calendar(request: CalendarRequest) -> CalendarYears:
    """China's calendar for the given years, read once per run and recorded in history.

    The workflow reads the calendar through this (local) activity rather than importing the
    data, so a newer `holidays` release changes the dates of new runs only, never a replay.
    """
    return CalendarYears(years=[china_year(y) for y in sorted(set(request.years))])
