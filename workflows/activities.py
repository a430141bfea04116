"""Activities: publishing events to JetStream, and reading the working calendar.

Publishing is exactly-once by construction: every event carries a deterministic id
(assignment id + sequence), sent as `Nats-Msg-Id`, and the stream drops a second copy
within its duplicate window (24h, contracts.subjects). The workflow's retry policy for
`publish_events` keeps every retry of one batch well inside that window.

The workflow runs `publish_events` as a local activity (see workflows.workflows): it
publishes before the workflow task that made the events is recorded. If that task then
fails (the worker dies in between), the next attempt makes the same ids again, but stamped
with its own, later, workflow time. The stream keeps the first copy; so on a duplicate the
publisher reads the stored copy back and returns it when it differs from what it sent, and
the workflow adopts the stream's copy: its state stays the fold of what was published.
"""

from __future__ import annotations

import asyncio
import dataclasses

import structlog
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamInfo
from nats.js.errors import NotFoundError, ServiceUnavailableError
from pydantic import BaseModel
from temporalio import activity

from contracts.events import Event
from contracts.subjects import EVENT_STREAM, event_stream_config, event_subject
from workflows.calendar import YearCalendar, china_year

log = structlog.get_logger("workflows.activities")

PUBLISH_EVENTS = "publish_events"
LOAD_WORKING_CALENDAR = "load_working_calendar"
READ_BACK_TIMEOUT = 2.0  # seconds for reading a duplicate's stored copy back (rare: after a failed task)


class PublishEvents(BaseModel):
    """A batch of one assignment's events, in sequence order."""

    events: list[Event]


class Published(BaseModel):
    stream: str
    published: int
    duplicates: int
    last_stream_seq: int | None = None
    # Duplicates whose stored copy differs from the event sent: the stream's copy, which wins.
    stored: list[Event] = []


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

    async def _stored_copy(self, stream_seq: int, sent: bytes, event_id: str) -> Event | None:
        """The stream's copy of a duplicate, if it is not the very message sent (None if it is).

        Needs `$JS.API.STREAM.MSG.GET.<stream>` in the worker's NATS permissions. Without it the
        duplicate still counts once (the stream's copy stays); only the workflow cannot adopt it,
        which is logged: refusing to go on would wedge the assignment instead.
        """
        try:
            msg = await asyncio.wait_for(self.js.get_msg(self.stream, stream_seq), READ_BACK_TIMEOUT)
        except (NatsError, TimeoutError) as exc:
            log.error("event_stored_copy_unreadable", event_id=event_id, stream_seq=stream_seq, error=repr(exc))
            return None
        if msg.data == sent:
            return None
        return Event.model_validate_json(msg.data or b"")

    @activity.defn(name=PUBLISH_EVENTS)
    async def publish_events(self, batch: PublishEvents) -> Published:
        info = activity.info()
        bound = log.bind(workflow_id=info.workflow_id, run_id=info.workflow_run_id, attempt=info.attempt)
        published = duplicates = 0
        last: int | None = None
        stored: list[Event] = []
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
            if ack.duplicate and (copy := await self._stored_copy(ack.seq, data, event.event_id)) is not None:
                # The ack of a duplicate names the stored message's sequence.
                if copy.event_id != event.event_id:
                    raise PublishRejected(f"duplicate of {event.event_id} acked as {copy.event_id}")
                bound.warning("event_already_stored_differently", event_id=event.event_id, stream_seq=ack.seq)
                stored.append(copy)
            # Liveness: a worker that dies mid-batch is noticed within the heartbeat timeout (a
            # local activity cannot heartbeat: its workflow task's timeout covers it instead).
            if not info.is_local:
                activity.heartbeat(event.seq)
            bound.info(
                "event_published",
                assignment_id=event.assignment_id,
                event_id=event.event_id,
                type=event.type,
                stream_seq=ack.seq,
                duplicate=bool(ack.duplicate),
            )
        return Published(
            stream=self.stream, published=published, duplicates=duplicates, last_stream_seq=last, stored=stored
        )


@activity.defn(name=LOAD_WORKING_CALENDAR)
async def load_working_calendar(request: CalendarRequest) -> CalendarYears:
    """China's calendar for the given years, read once per run and recorded in history.

    The workflow reads the calendar through this (local) activity rather than importing the
    data, so a newer `holidays` release changes the dates of new runs only, never a replay.
    """
    return CalendarYears(years=[china_year(y) for y in sorted(set(request.years))])


async def ensure_event_stream(js: JetStreamContext, replicas: int = 1, wait: float = 30.0) -> None:
    """Create the event stream with `replicas` copies (NATS_REPLICAS) if it does not exist.

    An existing stream keeps its configuration, except that a replica count below `replicas`
    is raised (a deployment moved to a cluster); it is never lowered here. While a cluster
    elects its leaders the JetStream API may not answer: retried for up to `wait` seconds.
    """
    config = event_stream_config(replicas)
    name = str(config["name"])
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            info = await _stream_or_create(js, config, name)
            break
        except (TimeoutError, NoRespondersError, ServiceUnavailableError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("stream.not_ready", stream=name, error=repr(exc))
            await asyncio.sleep(0.5)
    if info is None:
        log.info("stream.created", stream=name, replicas=replicas)
        return
    have = info.config.num_replicas or 1
    if have < replicas:
        try:
            await js.update_stream(dataclasses.replace(info.config, num_replicas=replicas))
            log.info("stream.replicas_raised", stream=name, replicas=replicas, was=have)
        except NatsError as exc:
            log.warning("stream.replicas_not_raised", stream=name, replicas=have, wanted=replicas, error=str(exc))


async def _stream_or_create(js: JetStreamContext, config: dict[str, object], name: str) -> StreamInfo | None:
    """The existing stream's info, or None after creating it."""
    try:
        return await js.stream_info(name)
    except NotFoundError:
        pass
    try:
        await js.add_stream(StreamConfig(**config))  # type: ignore[arg-type]
        return None
    except (NatsError, TimeoutError):
        # Created meanwhile by another process, or this user may not create it: fail only if it is not there.
        return await js.stream_info(name)
