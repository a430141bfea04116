"""Events reach the real JetStream stream exactly once, in sequence, whatever the retries."""

from __future__ import annotations

import datetime as dt

from nats.js import JetStreamContext
from temporalio import activity
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from contracts.base import SYSTEM_ACTOR
from contracts.commands import AcceptAssignment
from contracts.events import AssignmentCreated, Event, make_event
from contracts.subjects import EVENT_STREAM
from tests.integration.conftest import Kit, department, make_spec, read_stream, send
from workflows.activities import PUBLISH_EVENTS, EventPublisher, Published, PublishEvents
from workflows.worker import build_worker


class FailsAfterPublishing(EventPublisher):
    """Publishes, then fails the first attempt of every batch: as if the ack or the worker were lost."""

    def __init__(self, js: JetStreamContext) -> None:
        super().__init__(js)
        self.results: list[tuple[int, Published]] = []

    @activity.defn(name=PUBLISH_EVENTS)
    async def publish_events(self, batch: PublishEvents) -> Published:
        result = await super().publish_events(batch)
        attempt = activity.info().attempt
        self.results.append((attempt, result))
        if attempt == 1:
            raise RuntimeError("injected: lost after publishing")
        return result


async def test_a_publish_retried_after_it_landed_leaves_one_copy(
    ts_env: WorkflowEnvironment, jetstream: JetStreamContext, task_queue: str
) -> None:
    publisher = FailsAfterPublishing(jetstream)
    async with build_worker(ts_env.client, jetstream, task_queue, publisher=publisher):
        kit = Kit(ts_env.client, jetstream, task_queue, ts_env)
        year = (await kit.today()).year
        spec = make_spec("fuling", year, year)
        h = await kit.start(spec)
        accepted = await send(h, AcceptAssignment(actor=department("fuling")))

    events = await read_stream(jetstream)
    assert [e.type for e in events] == ["AssignmentCreated", "AssignmentAccepted"]
    assert [e.seq for e in events] == [0, 1] and events[1].event_id == accepted.event_ids[0]
    # Each batch: attempt 1 stored it (and "failed"), attempt 2 was told it is a duplicate.
    assert [(a, r.published, r.duplicates) for a, r in publisher.results] == [(1, 1, 0), (2, 0, 1)] * 2
    assert (await jetstream.stream_info(EVENT_STREAM)).state.messages == 2


def an_event(seq: int) -> Event:
    fact = AssignmentCreated(task_title="t", role="lead", start_year=2026, horizon_year=2027)
    return make_event(
        fact,
        seq=seq,
        occurred_at=dt.datetime(2026, 11, 25, tzinfo=dt.UTC),
        programme_id="cq-2022-79",
        actor=SYSTEM_ACTOR,
        assignment_id="cq-2022-79.t01.yubei",
        task_no=1,
        unit_id="yubei",
    )


async def test_the_publisher_resends_a_partial_batch_without_copies(jetstream: JetStreamContext) -> None:
    publisher = EventPublisher(jetstream)
    env = ActivityEnvironment()
    first = await env.run(publisher.publish_events, PublishEvents(events=[an_event(0), an_event(1)]))
    assert (first.published, first.duplicates, first.stream) == (2, 0, EVENT_STREAM)
    # A retry of a longer batch whose first part already landed.
    again = await env.run(publisher.publish_events, PublishEvents(events=[an_event(s) for s in range(4)]))
    assert (again.published, again.duplicates) == (2, 2)
    events = await read_stream(jetstream)
    assert [e.event_id for e in events] == [f"cq-2022-79.t01.yubei#{s:06d}" for s in range(4)]
    raw = await jetstream.get_msg(EVENT_STREAM, 1)
    assert raw.subject == "pf.events.cq-2022-79.yubei.AssignmentCreated"
    assert raw.headers is not None and raw.headers["Nats-Msg-Id"] == "cq-2022-79.t01.yubei#000000"
