"""Events onto the stream as the worker publishes them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats
from nats.js import JetStreamContext

from contracts.events import Event
from contracts.subjects import event_subject


async def publish(
    to: JetStreamContext | str, events: Sequence[Event], msg_id_suffix: str = "", window: int = 256
) -> int:
    """Publish `events` in list order with Nats-Msg-Id = event id + `msg_id_suffix`; returns the stream
    position of the last (0 for none).

    `to` is a JetStream context, or a NATS URL to connect to for this call. Up to `window` publishes
    are in flight at once: one connection sends them in list order, so the stream holds that order.
    """
    if isinstance(to, str):
        nc = await nats.connect(to)
        try:
            return await publish(nc.jetstream(), events, msg_id_suffix, window)
        finally:
            await nc.close()
    last = 0
    for lo in range(0, len(events), window):
        acks = await asyncio.gather(
            *(
                to.publish(
                    event_subject(e.programme_id, e.unit_id, e.type),
                    e.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": e.event_id + msg_id_suffix},
                )
                for e in events[lo : lo + window]
            )
        )
        last = max(last, *(ack.seq for ack in acks))
    return last
