"""AUDIT_PREPARE_PROCESS: batches prepared in a spawned process come back exactly as prepared here,
and when that process dies the batch is prepared in the service process instead (nothing lost)."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass

from services.audit.ingest import Message, prepare
from services.audit.subscribers import Preparer
from tests.integration.audit_support import lifecycle


@dataclass
class FakeDelivery:
    """What the preparer reads of a nats message: its ack subject (the stream seq), subject and data."""

    reply: str
    subject: str
    data: bytes


def deliveries() -> list[FakeDelivery]:
    events = lifecycle(14, "yuzhong") + lifecycle(3, "jiangbei")
    out = [
        FakeDelivery(f"$JS.ACK.S.C.1.{n}.{n}.0.0", f"pf.events.x.{e.type}", e.model_dump_json().encode())
        for n, e in enumerate(events, start=1)
    ]
    out.append(FakeDelivery(f"$JS.ACK.S.C.1.{len(out) + 1}.{len(out) + 1}.0.0", "pf.events.x.Bad", b"{not json"))
    return out


def here(raw: list[FakeDelivery]) -> tuple[list[object], list[int], int]:
    p = prepare([Message(int(m.reply.split(".")[5]), m.subject, m.data) for m in raw])
    return list(p.events), [r["stream_seq"] for r in p.bad], p.position


async def test_the_prepare_process_gives_what_this_process_would() -> None:
    raw = deliveries()
    preparer = Preparer(enabled=True)
    preparer.start()
    try:
        assert preparer.ready is not None
        await asyncio.wait_for(preparer.ready, 60)
        assert preparer._usable()
        got = await preparer.result(raw, await preparer.submit(raw))
        assert (list(got.events), [r["stream_seq"] for r in got.bad], got.position) == here(raw)
        assert len(got.events) == len(raw) - 1 and len(got.bad) == 1

        # Kill the process: the next batch is prepared here, the same, and a new process is started.
        assert preparer.pool is not None
        pids = list(preparer.pool._processes)  # the one worker
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        await asyncio.sleep(0.5)
        again = await preparer.result(raw, await preparer.submit(raw))
        assert (list(again.events), [r["stream_seq"] for r in again.bad], again.position) == here(raw)
    finally:
        preparer.close()
