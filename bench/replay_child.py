"""`python -m bench.replay_child MODE ARGS...`: one pass over a ledger or a stream, in a process of
its own so its peak resident memory (VmHWM) belongs to that pass alone. Prints one JSON line:
`{"mode", "count", "seconds", "rate", "hwm_mib", ...}`; `seconds` excludes start-up and imports.

Modes
    stream NATS_URL COUNT   raw: an ordered JetStream replay of the event stream (callback consumer)
    rows DB                 raw: read every ledger row (sequence, text, hash) with the stdlib sqlite3,
                            or with asyncpg (a cursor, 2,000 rows a fetch) when DB is a PostgreSQL URL
    verify DB KEY_DIR       policyflow: the audit service's chain + checkpoint verification
    replay DB               policyflow: the audit service's replay, folding every assignment's events

DB is a SQLite file or a postgresql:// URL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench.common import proc_memory


async def stream(url: str, count: str) -> dict[str, Any]:
    import nats
    from nats.js.api import DeliverPolicy

    from contracts.subjects import EVENT_STREAM, EVENT_SUBJECTS

    total = int(count)
    nc = await nats.connect(url)
    done = asyncio.Event()
    seen = 0
    size = 0

    async def on_message(msg: Any) -> None:
        nonlocal seen, size
        seen += 1
        size += len(msg.data)
        if seen >= total:
            done.set()

    started = time.perf_counter()
    sub = await nc.jetstream().subscribe(
        EVENT_SUBJECTS,
        stream=EVENT_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        cb=on_message,
        pending_msgs_limit=200_000,
    )
    await asyncio.wait_for(done.wait(), timeout=3600)
    seconds = time.perf_counter() - started
    await sub.unsubscribe()
    await nc.close()
    return {"count": seen, "seconds": seconds, "bytes": size}


async def rows(db: str) -> dict[str, Any]:
    if "://" in db:
        return await pg_rows(db)
    started = time.perf_counter()
    count = size = 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        cur = conn.execute("SELECT ledger_seq, canonical, hash FROM ledger ORDER BY ledger_seq")
        while batch := cur.fetchmany(2000):
            count += len(batch)
            size += sum(len(r[1]) for r in batch)
    return {"count": count, "seconds": time.perf_counter() - started, "bytes": size}


async def pg_rows(url: str) -> dict[str, Any]:
    from bench import pg

    conn = await pg.connect(url)
    started = time.perf_counter()
    count = size = 0
    async with conn.transaction():
        cur = await conn.cursor("SELECT ledger_seq, canonical, hash FROM ledger ORDER BY ledger_seq")
        while batch := await cur.fetch(2000):
            count += len(batch)
            size += sum(len(r[1]) for r in batch)
    seconds = time.perf_counter() - started
    await conn.close()
    return {"count": count, "seconds": seconds, "bytes": size}


def _engine(db: str) -> Any:
    from services.shared.db import make_engine, sqlite_url

    return make_engine(db if "://" in db else sqlite_url(Path(db)))


async def verify(db: str, key_dir: str) -> dict[str, Any]:
    from services.audit import queries
    from services.audit.checkpoints import Signer

    engine = _engine(db)
    pem = Signer(Path(key_dir)).public_pem
    started = time.perf_counter()
    out = await queries.verify(engine, pem)
    seconds = time.perf_counter() - started
    await engine.dispose()
    if not out.get("ok"):
        raise SystemExit(f"verify failed: {out}")
    return {"count": out["count"], "seconds": seconds, "checkpoints_checked": out.get("checkpoints_checked")}


async def replay(db: str) -> dict[str, Any]:
    from sqlalchemy import func, select

    from services.audit import queries
    from services.audit.store import ledger

    engine = _engine(db)
    async with engine.connect() as conn:
        events = int((await conn.execute(select(func.count()).select_from(ledger))).scalar_one())
    started = time.perf_counter()
    states = 0
    async for _ in queries.replay(engine, dt.datetime(2999, 1, 1, tzinfo=dt.UTC), None, None):
        states += 1
    seconds = time.perf_counter() - started
    await engine.dispose()
    return {"count": events, "seconds": seconds, "assignments": states}


MODES: dict[str, Callable[..., Coroutine[Any, Any, dict[str, Any]]]] = {
    "stream": stream,
    "rows": rows,
    "verify": verify,
    "replay": replay,
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] not in MODES:
        raise SystemExit(__doc__)
    out = asyncio.run(MODES[argv[0]](*argv[1:]))
    mem = proc_memory(os.getpid())
    out.update(mode=argv[0], rate=out["count"] / out["seconds"] if out["seconds"] else 0.0, **mem)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
