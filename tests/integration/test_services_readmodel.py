"""The progress read model against a real JetStream: built incrementally by the durable consumer,
unchanged by redelivered events, and identical when rebuilt from the stream; on SQLite and on
PostgreSQL (tests/databases.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from contracts.events import Event
from contracts.subjects import event_subject
from services.progress import readmodel
from services.shared.db import make_engine
from tests.databases import TestDatabase
from tests.e2e.support import Stack, eventually, get_json, lifecycle_events, running_stack


@pytest.fixture
async def stack(
    database: TestDatabase, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-rm-{uuid.uuid4().hex[:8]}"
    urls = {name: database.url(name) for name in ("assignment", "progress")}
    async with running_stack(database.tmp, nats_url, temporal_client, temporal_address, tq, worker=False,
                             db_urls=urls) as s:
        yield s


async def publish(js: object, events: list[Event], msg_id_suffix: str = "") -> int:
    last = 0
    for e in events:
        ack = await js.publish(  # type: ignore[attr-defined]
            event_subject(e.programme_id, e.unit_id, e.type), e.model_dump_json().encode(),
            headers={"Nats-Msg-Id": e.event_id + msg_id_suffix},
        )
        last = ack.seq
    return last


async def caught_up(stack: Stack, seq: int) -> None:
    async with httpx.AsyncClient(timeout=10) as c:

        async def probe() -> bool:
            health = await get_json(c, f"{stack.progress_url}/healthz", {})
            return bool(health["read_model_position"] >= seq)

        await eventually(probe)


async def test_incremental_then_redelivered_then_rebuilt(stack: Stack) -> None:
    events = lifecycle_events("rm-prog", n_units=40)
    last = await publish(stack.js, events)
    await caught_up(stack, last)
    engine = make_engine(stack.db_urls["progress"])
    try:
        incremental = await readmodel.snapshot(engine)
        assert len(incremental) == 40

        # The same facts again under new message ids: the stream keeps them, the fold ignores them.
        last = await publish(stack.js, events[:15], msg_id_suffix="-again")
        await caught_up(stack, last)
        assert await readmodel.snapshot(engine) == incremental

        seen: list[tuple[int, int]] = []
        read = await readmodel.rebuild(engine, stack.js, batch=16, progress=lambda d, t: seen.append((d, t)))
        assert read == len(events) + 15 and seen[-1] == (read, read)
        assert await readmodel.snapshot(engine) == incremental
        assert await readmodel.position(engine) == last

        # The live consumer carries on after a rebuild.
        more = lifecycle_events("rm-prog-2", n_units=3)
        last = await publish(stack.js, more)
        await caught_up(stack, last)
        assert len(await readmodel.snapshot(engine)) == 43
    finally:
        await engine.dispose()


async def test_status_reads_the_read_model(stack: Stack) -> None:
    last = await publish(stack.js, lifecycle_events("rm-status", n_units=9))
    await caught_up(stack, last)
    async with httpx.AsyncClient(timeout=10) as c:
        sup = stack.headers("supervisor")
        page = await get_json(c, f"{stack.progress_url}/v1/status", sup, overdue="yellow")
        assert page["total"] == 3 and all(i["overdue_level"] == "yellow" for i in page["items"])
        page = await get_json(c, f"{stack.progress_url}/v1/status", sup, limit=5)
        assert page["total"] == 9 and len(page["items"]) == 5 and page["items"][0]["overdue_level"] == "yellow"
