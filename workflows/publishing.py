"""How a workflow publishes its events: the `publish_events` activity, with one retry policy.

The events are the activity's input, so history holds exactly what is published; a retry
sends the same bytes under the same `Nats-Msg-Id`, which the stream drops as a duplicate.
"""

from __future__ import annotations

import datetime as dt

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.events import Event
    from workflows.activities import EventPublisher, Published, PublishEvents

PUBLISH_BATCH = 50
# The whole retry span of one publish is 6h, a quarter of the stream's 24h duplicate window:
# every retry of a batch re-sends ids the stream still remembers, so a retry after a publish
# whose ack was lost is dropped as a duplicate, never stored twice.
PUBLISH_SPAN = dt.timedelta(hours=6)
PUBLISH_RETRY = RetryPolicy(
    initial_interval=dt.timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=dt.timedelta(minutes=1)
)
# If NATS stays away longer than the span, the workflow tries again after a pause. Past 24h a
# lost ack could in theory yield a second copy; consumers also de-duplicate by event_id.
PUBLISH_PAUSE = dt.timedelta(minutes=10)


async def publish(batch: list[Event]) -> Published:
    return await workflow.execute_activity_method(
        EventPublisher.publish_events,
        PublishEvents(events=batch),
        start_to_close_timeout=dt.timedelta(minutes=5),  # a full batch at the slowest acks
        heartbeat_timeout=dt.timedelta(seconds=10),  # one beat per event published
        schedule_to_close_timeout=PUBLISH_SPAN,
        retry_policy=PUBLISH_RETRY,
    )
