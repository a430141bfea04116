"""Two audit services on one ledger database and one stream: one writes, the other stands by.

Both share the PostgreSQL database and the durable consumer. The first to start (a
`python -m services.audit` process) holds the writer lock (services/audit/writer.py); the second
(in this process) waits. kill -9 of the writer in the middle of the stream hands over to the
standby, which carries on from the committed head: every event is in the ledger exactly once,
in stream order, and the chain verifies. The lock itself is checked on SQLite (file lock) too.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.base import UserRole
from services.audit.settings import AuditSettings
from services.audit.writer import WriterLock, WriterLockLost
from services.shared.db import make_engine
from tests.databases import TestDatabase
from tests.integration.audit_support import many_events, running, settings_for, spawn
from tests.support.processes import stopped_after
from tests.support.publishing import publish
from tests.support.waiting import until

NDJSON = "application/x-ndjson"


async def health(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=2) as c:
            r = await c.get(f"{url}/healthz")
            return dict(r.json()) if r.status_code == 200 else {}
    except httpx.HTTPError:
        return {}


def url(s: AuditSettings) -> str:
    return f"http://127.0.0.1:{s.port}"


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    with stopped_after() as started:
        yield started


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("event_stream")
async def test_one_writer_then_the_standby_takes_over_after_kill_9(
    tmp_path: Path, nats_url: str, database: TestDatabase, procs: list[subprocess.Popen[bytes]]
) -> None:
    events = many_events(30)  # 420 events
    first, second, third = events[:140], events[140:280], events[280:]
    a, b = (
        settings_for(tmp_path / name, nats_url, database_url=database.url("audit"), batch_size=50, checkpoint_every=0)
        for name in ("a", "b")
    )
    procs.append(spawn(a, tmp_path / "a.log"))  # a process, to be killed with -9
    await until(lambda: _state(a, "running"), "the first service writing")
    async with running(b) as standby:  # in this process
        await until(lambda: _state(b, "standby"), "the second service standing by")
        await publish(nats_url, first)
        await until(lambda: _size(a, len(first)), "the first part ledgered")
        assert (await health(url(b)))["consumer"].startswith("standby")  # still waiting: it never consumed

        publishing = asyncio.create_task(publish(nats_url, second, window=10))
        await until(lambda: _size(a, len(first) + 20), "the writer into the second part")
        procs[0].send_signal(signal.SIGKILL)  # mid-stream: its open batch is never acked
        procs[0].wait()
        await publishing
        await until(lambda: _state(b, "running"), "the standby taking over")
        await publish(nats_url, third)
        await until(lambda: _size(b, len(events)), "every event ledgered")

        auth = standby.auth(UserRole.AUDITOR)
        r = await standby.client.get("/v1/audit/events", headers={**auth, "Accept": NDJSON})
        rows = [json.loads(line) for line in r.text.splitlines()]
        verdict = (await standby.client.get("/v1/audit/verify", headers=auth)).json()
    assert [row["event_id"] for row in rows] == [e.event_id for e in events]  # each once, in stream order
    assert [row["ledger_seq"] for row in rows] == list(range(1, len(events) + 1))
    stream_seqs = [row["stream_seq"] for row in rows]
    assert stream_seqs == sorted(stream_seqs) and len(set(stream_seqs)) == len(stream_seqs)
    assert verdict["ok"] is True and verdict["count"] == len(events), verdict


async def test_the_writer_lock_has_one_holder_and_fences_a_lost_session(database: TestDatabase) -> None:
    engines = [make_engine(database.url("audit")) for _ in range(2)]
    first, second = (WriterLock(e, "audit-ledger", poll=0.05, keepalive=0.2) for e in engines)
    lost = asyncio.Event()

    async def on_lost() -> None:
        lost.set()

    first.on_lost = on_lost
    try:
        await first.acquire()
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.5)
        assert not waiting.done() and not second.held  # a hot standby
        async with engines[0].begin() as conn:
            await first.fence(conn)  # the writer may write
        if database.backend == "postgresql":
            # The writer's session dies (as when its connection drops): PostgreSQL frees the lock.
            await database.execute("audit", "SELECT pg_terminate_backend(:pid)", {"pid": first._pid})
            await asyncio.wait_for(lost.wait(), 10)  # its watchdog notices
            with pytest.raises(WriterLockLost):
                async with engines[0].begin() as conn:
                    await first.fence(conn)  # and it may no longer append
        else:
            await first.release()
        await asyncio.wait_for(waiting, 10)
        assert second.held
        async with engines[1].begin() as conn:
            await second.fence(conn)
    finally:
        for lock in (first, second):
            await lock.release()
        for e in engines:
            await e.dispose()


async def _state(s: AuditSettings, prefix: str) -> bool:
    return str((await health(url(s))).get("consumer", "")).startswith(prefix)


async def _size(s: AuditSettings, at_least: int) -> bool:
    return int((await health(url(s))).get("ledger_size", -1)) >= at_least
