"""A read model killed mid-batch starts again where it committed, not after the ack wait.

The progress service's durable holds deliveries its last process fetched and never acked; left
alone, JetStream would send newer messages first and those only after the ack wait (60 s), and
the view would wait that long behind the gap. On start the runner recreates the durable right
after the view's position (the progress NATS user may delete its own durable), as the ledger does.
"""

from __future__ import annotations

import time
from pathlib import Path

import nats
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from contracts.subjects import EVENT_STREAM, EVENT_SUBJECTS, READ_MODEL_DURABLE
from deploy.local.servers import nats_passwords, nats_server, nats_user_url
from services.progress import readmodel
from services.progress.store import READ_MODEL, create_tables
from services.shared.consumer import Runner, consumer_config, place_consumer
from services.shared.db import make_engine, sqlite_url
from services.shared.projection import Projection
from services.shared.streams import ensure_event_stream
from tests.integration.audit_support import many_events
from tests.support.publishing import publish
from tests.support.waiting import until

ACK_WAIT = 60.0  # the runner's default
BATCH = 50


async def test_a_read_model_killed_mid_batch_resumes_at_once(tmp_path: Path) -> None:
    server = nats_server(tmp_path / "nats", auth=True).start()
    passwords = nats_passwords(tmp_path / "nats")
    events = many_events(20)  # 280 events
    engine = make_engine(sqlite_url(tmp_path / "progress.sqlite"))
    try:
        worker = await nats.connect(nats_user_url(server.port, "worker", passwords))
        await ensure_event_stream(worker.jetstream())
        last = await publish(worker.jetstream(), events)
        await worker.close()

        # The process that dies: its durable delivered a batch it never acked.
        dying = await nats.connect(nats_user_url(server.port, "progress", passwords))
        js = dying.jetstream()
        config = consumer_config(READ_MODEL_DURABLE, EVENT_SUBJECTS, 0, BATCH, ACK_WAIT)
        await place_consumer(js, EVENT_STREAM, config, 0)
        held = await (await js.pull_subscribe_bind(READ_MODEL_DURABLE, EVENT_STREAM)).fetch(BATCH, timeout=5)
        assert len(held) == BATCH
        await dying.close()  # no ack: the server keeps them pending until the ack wait
        admin = await nats.connect(nats_user_url(server.port, "admin", passwords))
        info = await admin.jetstream().consumer_info(EVENT_STREAM, READ_MODEL_DURABLE)
        await admin.close()
        assert info.num_ack_pending == BATCH

        # Its successor, on a read model that committed nothing.
        await create_tables(engine)
        nc = await nats.connect(nats_user_url(server.port, "progress", passwords))
        runner = Runner(nc.jetstream(), Projection(engine, READ_MODEL, READ_MODEL_DURABLE), batch_size=BATCH)
        started = time.monotonic()
        with capture_logs() as logs:
            await runner.start()
            try:
                # well within the ack wait: the held deliveries came again at once
                await until(lambda: _at(engine, last), f"the read model at {last}", ACK_WAIT / 3, interval=0.05)
            finally:
                await runner.stop()
                await nc.close()
        caught_up = time.monotonic() - started
        assert any(e["event"] == "consumer.repositioned" for e in logs), logs
        assert not any(e["event"] == "consumer.reposition_denied" for e in logs)
        print(
            f"read model restarted after a crash mid-batch ({BATCH} deliveries held): "
            f"{last} events in {caught_up:.1f} s"
        )

        rebuilt = make_engine(sqlite_url(tmp_path / "rebuilt.sqlite"))
        try:
            await create_tables(rebuilt)
            await readmodel.apply_messages(
                rebuilt, [(i + 1, e.model_dump_json().encode()) for i, e in enumerate(events)]
            )
            assert await readmodel.snapshot(engine) == await readmodel.snapshot(rebuilt)
        finally:
            await rebuilt.dispose()
    finally:
        await engine.dispose()
        server.stop()


async def _at(engine: AsyncEngine, seq: int) -> bool:
    return await readmodel.position(engine) >= seq
