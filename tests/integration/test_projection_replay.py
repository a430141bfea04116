"""`projection.replay` on a real stream: batches in order, progress, and a failing batch surfaces."""

from __future__ import annotations

import nats
import pytest

from contracts.subjects import EVENT_SUBJECT_PREFIX, EVENT_SUBJECTS
from services.shared import projection


async def fill(nats_url: str, count: int) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for i in range(count):
        await js.publish_async(f"{EVENT_SUBJECT_PREFIX}.t.u", str(i).encode())
    await js.publish_async_completed()
    await nc.close()


async def test_batches_arrive_in_stream_order_with_progress(nats_url: str, event_stream: str) -> None:
    await fill(nats_url, 25)
    nc = await nats.connect(nats_url)
    batches: list[list[tuple[int, bytes]]] = []
    seen: list[tuple[int, int]] = []

    async def on_batch(items: list[tuple[int, bytes]], first: int) -> None:
        assert first == 1
        batches.append(items)

    read = await projection.replay(
        nc.jetstream(), event_stream, EVENT_SUBJECTS, on_batch, batch=10, progress=lambda d, t: seen.append((d, t))
    )
    await nc.close()
    assert read == 25
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [seq for b in batches for seq, _ in b] == list(range(1, 26))
    assert [data for b in batches for _, data in b] == [str(i).encode() for i in range(25)]
    assert seen == [(10, 25), (20, 25), (25, 25)]


async def test_a_batch_that_fails_fails_the_replay(nats_url: str, event_stream: str) -> None:
    await fill(nats_url, 30)
    nc = await nats.connect(nats_url)
    calls = 0

    async def on_batch(_items: list[tuple[int, bytes]], _first: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        await projection.replay(nc.jetstream(), event_stream, EVENT_SUBJECTS, on_batch, batch=10, idle=2.0)
    await nc.close()
    assert calls == 2  # nothing after the failing batch was applied
