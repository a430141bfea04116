"""Replay and verify: folding every assignment's state from the ledger (the audit replay, i.e. the
read models rebuilt) and verifying the hash chain and its signed checkpoints, vs an ordered
JetStream replay of the same events; plus peak memory at two ledger sizes (it must not grow).

The events (whole lifecycles, interleaved) are published to a stream and written into two
ledgers, N/10 and N entries, by the audit service's own Ingestor and Checkpointer. Each pass
runs in a child process (bench.replay_child) so its VmHWM is its own. The policyflow rate is
the slower of the two passes (replay, verify); a raw read of the same rows with the stdlib
sqlite3 is reported beside it.

The stream for this benchmark lives on a nats-server with the default sync interval: only
reads are measured here, and filling 1,000,000 messages with an fsync each would take long.

With `--db postgres` the two ledgers are two fresh PostgreSQL databases (written without waiting
for each commit's flush, for building only; the passes read through the service's own engine)
and the raw read of the rows is asyncpg's.

Options (`--opt key=value`): `events=N` (the larger ledger; the smaller is N/10) and `rounds=R`,
for iterating at sizes between the quick and the full ones.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import nats
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import pg
from bench.common import (
    NotAvailable,
    Result,
    child_env,
    interleaved,
    median,
    missing_modules,
    spread,
)
from bench.context import Context
from bench.events import events
from contracts.subjects import EVENT_STREAM, event_subject
from deploy.local.servers import Server, find_binary, free_port
from services.shared.streams import ensure_event_stream

NAME = "replay_verify"
UNIT = "events/s"
TARGET_RATIO = 0.5
CHUNK = 1000
PF_MODULES = ("services.audit.ingest", "services.audit.checkpoints", "services.audit.queries")


def fast_engine(db: Path | str) -> AsyncEngine:
    """For building the ledgers only: no fsync (the passes read through the service's own engine)."""
    if isinstance(db, str):
        from services.shared.db import async_url

        settings = {"synchronous_commit": "off"}
        return create_async_engine(async_url(db), connect_args={"server_settings": settings})
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=OFF")
        cur.close()

    return engine


class LedgerWriter:
    """A ledger written as the audit service writes it: Ingestor batches, a checkpoint every 1000."""

    def __init__(self, db: Path | str, key_dir: Path) -> None:
        from services.audit.checkpoints import Checkpointer, Signer
        from services.audit.ingest import Ingestor

        self.engine = fast_engine(db)
        self.ingestor = Ingestor(self.engine, "bench")
        self.checkpointer = Checkpointer(self.engine, Signer(key_dir), 1000)

    async def open(self) -> LedgerWriter:
        from services.audit.store import create_tables

        await create_tables(self.engine)
        await self.ingestor.load()
        return self

    async def write(self, batch: list[tuple[int, str, bytes]]) -> None:
        from services.shared.consumer import Message

        await self.ingestor.apply([Message(seq, subject, data) for seq, subject, data in batch])
        await self.checkpointer.maybe(self.ingestor.size)

    async def close(self) -> int:
        await self.engine.dispose()
        return self.ingestor.size


def nats_default_sync(state_dir: Path) -> Server:
    port = free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "nats.conf"
    conf.write_text(f'listen: 127.0.0.1:{port}\nmax_payload: 1MB\njetstream {{ store_dir: "{state_dir / "js"}" }}\n')
    return Server("nats-server", [find_binary("nats-server"), "-c", str(conf)], port, state_dir / "nats.log")


async def fill(url: str, total: int, ledgers: list[tuple[LedgerWriter, int]]) -> float:
    """Publish `total` events to the stream and write each ledger's first `limit` of them."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_event_stream(js)
    started = time.perf_counter()
    chunk: list[tuple[int, str, bytes]] = []
    seq = 0

    async def flush() -> None:
        await nc.flush()
        for writer, limit in ledgers:
            part = [m for m in chunk if m[0] <= limit]
            if part:
                await writer.write(part)
        chunk.clear()

    for e in events("bench-replay", total):
        seq += 1
        data = e.model_dump_json().encode()
        subject = event_subject(e.programme_id, e.unit_id, e.type)
        await nc.publish(subject, data, headers={"Nats-Msg-Id": e.event_id})
        chunk.append((seq, subject, data))
        if len(chunk) >= CHUNK:
            await flush()
    await flush()
    while int((await js.stream_info(EVENT_STREAM)).state.messages) < seq:
        await asyncio.sleep(0.05)
    await nc.close()
    return seq / (time.perf_counter() - started)


async def child(*args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.replay_child",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"replay_child {args[0]} failed: {err.decode(errors='replace')[-2000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def run(ctx: Context) -> Result:
    total = int(ctx.options.get("events", ctx.size(20_000, 1_000_000)))
    small = total // 10
    rounds = int(ctx.options.get("rounds", ctx.size(2, 3)))
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    result.extra.update(events=total, small_events=small)
    server = nats_default_sync(ctx.work_dir / "nats").start()
    url = f"nats://127.0.0.1:{server.port}"
    databases: list[str] = []
    try:
        missing = missing_modules(*PF_MODULES)
        if missing:
            await fill(url, total, [])
            raw = [await child("stream", url, str(total)) for _ in range(rounds)]
            raise NotAvailable(f"not available: {', '.join(missing)} not landed", median([r["rate"] for r in raw]))
        key_dir = ctx.work_dir / "keys"
        db_small: Path | str = ctx.work_dir / "ledger-small.sqlite"
        db_large: Path | str = ctx.work_dir / "ledger-large.sqlite"
        if ctx.db == "postgres":
            result.extra["postgres"] = await pg.server_settings()
            db_small = await pg.create_database()
            databases.append(db_small)
            db_large = await pg.create_database()
            databases.append(db_large)
        writers = [
            (await LedgerWriter(db_small, key_dir).open(), small),
            (await LedgerWriter(db_large, key_dir).open(), total),
        ]
        started = time.perf_counter()
        await fill(url, total, writers)
        sizes = [await w.close() for w, _ in writers]
        ctx.log(f"  stream and ledgers ({sizes}) built in {time.perf_counter() - started:.0f}s")
        if sizes != [small, total]:
            raise RuntimeError(f"ledgers hold {sizes} entries, expected {[small, total]}")

        passes: dict[str, list[dict[str, Any]]] = {"stream": [], "verify": [], "replay": []}

        async def raw_round(_: int) -> float:
            out = await child("stream", url, str(total))
            passes["stream"].append(out)
            return float(out["rate"])

        async def pf_round(_: int) -> float:
            v = await child("verify", str(db_large), str(key_dir))
            r = await child("replay", str(db_large))
            passes["verify"].append(v)
            passes["replay"].append(r)
            return min(float(v["rate"]), float(r["rate"]))

        raw_rates, pf_rates = await interleaved(rounds, raw_round, pf_round)
        rows = await child("rows", str(db_large))
        small_verify = await child("verify", str(db_small), str(key_dir))
        small_replay = await child("replay", str(db_small))
        result.raw_rate, result.policyflow_rate = median(raw_rates), median(pf_rates)
        large_verify, large_replay = passes["verify"][-1], passes["replay"][-1]
        result.extra.update(
            raw=spread(raw_rates),
            policyflow=spread(pf_rates),
            verify_rate=round(median([p["rate"] for p in passes["verify"]]), 1),
            replay_rate=round(median([p["rate"] for p in passes["replay"]]), 1),
            raw_sqlite_rows_rate=round(rows["rate"], 1),
            ratio_vs_sqlite_rows=round(median(pf_rates) / rows["rate"], 4),
            assignments=large_replay["assignments"],
            peak_memory_mib={
                "verify": {str(small): small_verify["hwm_mib"], str(total): large_verify["hwm_mib"]},
                "replay": {str(small): small_replay["hwm_mib"], str(total): large_replay["hwm_mib"]},
                "raw_stream": passes["stream"][-1]["hwm_mib"],
                "raw_sqlite_rows": rows["hwm_mib"],
            },
        )
        if ctx.db == "postgres":
            result.extra["raw_postgres_rows_rate"] = result.extra.pop("raw_sqlite_rows_rate")
            result.extra["ratio_vs_postgres_rows"] = result.extra.pop("ratio_vs_sqlite_rows")
            result.extra["peak_memory_mib"]["raw_postgres_rows"] = result.extra["peak_memory_mib"].pop(
                "raw_sqlite_rows"
            )
        else:
            result.extra["ledger_bytes"] = {
                str(small): sum(p.stat().st_size for p in ctx.work_dir.glob("ledger-small.sqlite*")),
                str(total): sum(p.stat().st_size for p in ctx.work_dir.glob("ledger-large.sqlite*")),
            }
        return result
    finally:
        server.stop()
        for database in databases:
            await pg.drop_database(database)
