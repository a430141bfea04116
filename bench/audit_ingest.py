"""Audit ingest: events per second from the stream into the hash-chained ledger (durable: JetStream
`sync_interval: always`, SQLite `synchronous=FULL`) vs a raw nats-py pull consumer that fetches and
acks the same messages, in batches of the same size.

Each round publishes a fresh block of lifecycle events while the audit service is stopped; then
the raw consumer drains that block through a new durable consumer, and the audit service is
started and drains it into its ledger (watched through its SQLite file). Both rates are steady
state: from the first batch seen to the last message.

With `--db postgres` the ledger is a fresh PostgreSQL database (bench/pg.py) and the raw half
does what a ledger needs at the least on the same server: it pulls a batch, inserts its rows
(stream sequence, subject, message) in one transaction with asyncpg's COPY, commits, then acks.
The pull-and-ack rate alone is reported beside it (`extra.raw_pull_only`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import asyncpg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bench import pg
from bench.common import (
    Child,
    NotAvailable,
    Result,
    gather_limited,
    interleaved,
    median,
    missing_modules,
    spread,
    unique,
)
from bench.context import Context
from bench.events import events
from bench.stack import BenchStack
from contracts.subjects import EVENT_STREAM, EVENT_SUBJECTS, event_subject

NAME = "audit_ingest"
UNIT = "events/s"
TARGET_RATIO = 0.5
BATCH = 500  # the audit service's default AUDIT_BATCH_SIZE; the raw consumer fetches the same
PUBLISH_IN_FLIGHT = 256


async def publish_block(js: JetStreamContext, programme_id: str, count: int) -> tuple[int, int, float]:
    """Publish `count` events; returns (first stream seq, last stream seq, publish rate)."""
    batch = list(events(programme_id, count))
    started = time.perf_counter()
    acks = await gather_limited(
        PUBLISH_IN_FLIGHT,
        [
            js.publish(
                event_subject(e.programme_id, e.unit_id, e.type),
                e.model_dump_json().encode(),
                stream=EVENT_STREAM,
                headers={"Nats-Msg-Id": e.event_id},
            )
            for e in batch
        ],
    )
    seconds = time.perf_counter() - started
    seqs = [a.seq for a in acks]
    return min(seqs), max(seqs), len(batch) / seconds


RAW_TABLE = "raw_ingest"


def raw_drain_config(first: int) -> tuple[str, ConsumerConfig]:
    """A fresh durable pull consumer from stream seq `first`, as the raw halves use."""
    durable = unique("raw-pull")
    config = ConsumerConfig(
        durable_name=durable,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=first,
        ack_policy=AckPolicy.EXPLICIT,
        max_ack_pending=BATCH * 4,
        filter_subject=EVENT_SUBJECTS,
    )
    return durable, config


async def raw_drain(js: JetStreamContext, first: int, count: int, pg_url: str | None = None) -> float:
    """Pull + ack `count` messages from stream seq `first` with a fresh durable consumer; with
    `pg_url`, each batch's rows are inserted and committed before its acks."""
    durable, config = raw_drain_config(first)
    sub = await js.pull_subscribe(EVENT_SUBJECTS, durable=durable, stream=EVENT_STREAM, config=config)
    conn = None if pg_url is None else await pg.connect(pg_url)
    try:
        if conn is not None:
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {RAW_TABLE} (stream_seq bigint PRIMARY KEY, "
                               "subject text NOT NULL, data text NOT NULL)")  # fmt: skip
        got, t1, c1 = 0, 0.0, 0
        while got < count:
            msgs = await sub.fetch(BATCH, timeout=10)
            if conn is not None:
                rows = [(m.metadata.sequence.stream, m.subject, m.data.decode()) for m in msgs]
                async with conn.transaction():
                    await conn.copy_records_to_table(RAW_TABLE, records=rows)
            for m in msgs:
                await m.ack()
            got += len(msgs)
            if not t1:
                t1, c1 = time.perf_counter(), got
        return (got - c1) / (time.perf_counter() - t1)
    finally:
        if conn is not None:
            await conn.close()
        await sub.unsubscribe()
        await js.delete_consumer(EVENT_STREAM, durable)


async def pg_ledger_size(conn: asyncpg.Connection) -> int:
    try:
        return int(await conn.fetchval("SELECT coalesce(max(ledger_seq), 0) FROM ledger"))
    except asyncpg.UndefinedTableError:  # the service has not created its tables yet
        return 0


def ledger_size(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT coalesce(max(ledger_seq), 0) FROM ledger").fetchone()[0])
    except sqlite3.OperationalError:  # the service has not created its tables yet
        return 0


async def audit_drain(stack: BenchStack, db: Path, before: int, count: int, timeout: float = 300.0) -> float:
    """Start the audit service and time its ledger growing from `before` to `before + count`."""
    child: Child = stack.spawn("audit", AUDIT_BATCH_SIZE=str(BATCH))
    conn = None if stack.pg_url is None else await pg.connect(stack.pg_url)
    try:
        target, t1, c1, t0 = before + count, 0.0, 0, time.perf_counter()
        deadline = time.monotonic() + timeout
        while True:
            size = ledger_size(db) if conn is None else await pg_ledger_size(conn)
            now = time.perf_counter()
            if size <= before:
                t0 = now  # the last moment the block had not begun
            elif not t1:
                t1, c1 = now, size
            if size >= target:
                if size == c1:  # a small block landed between two looks: count it all
                    return (size - before) / (now - t0)
                return (size - c1) / (now - t1)
            if not child.alive():
                raise RuntimeError(f"audit service exited:\n{child.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ledger at {size} of {target} after {timeout:.0f}s:\n{child.tail()}")
            await asyncio.sleep(0.02)
    finally:
        if conn is not None:
            await conn.close()
        stack.stop_process("audit")


async def pg_relation_bytes(url: str, table: str) -> int:
    conn = await pg.connect(url)
    try:
        return int(await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table))
    finally:
        await conn.close()


async def run(ctx: Context) -> Result:
    block = int(ctx.options.get("events", ctx.size(6_000, 100_000)))
    rounds = int(ctx.options.get("rounds", ctx.size(2, 4)))
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    durability = "sqlite FULL" if ctx.db == "sqlite" else "postgres (server settings in extra.postgres)"
    result.extra.update(events_per_round=block, batch=BATCH, durability=f"nats sync_interval=always, {durability}")
    if ctx.db == "postgres":
        result.extra["postgres"] = await pg.server_settings()
    stack = BenchStack(ctx.work_dir, temporal=False, db=ctx.db)
    with ctx.phase("nats-server"):
        await stack.start_servers()
    nc = await stack.nats()
    js = nc.jetstream()
    db = stack.var_dir / "audit.sqlite"
    blocks: list[tuple[int, int]] = []
    publish_rates: list[float] = []
    try:

        async def block_for(i: int) -> tuple[int, int]:
            while len(blocks) <= i:
                with ctx.phase(f"publish {block} events"):
                    first, last, rate = await publish_block(js, f"bench-ingest-{len(blocks)}", block)
                blocks.append((first, last))
                publish_rates.append(rate)
            return blocks[i]

        pull_only: list[float] = []

        async def raw_round(i: int) -> float:
            first, last = await block_for(i)
            if stack.pg_url is not None:
                pull_only.append(await raw_drain(js, first, last - first + 1))
            return await raw_drain(js, first, last - first + 1, stack.pg_url)

        async def pf_round(i: int) -> float:
            first, last = await block_for(i)
            return await audit_drain(stack, db, before=first - 1, count=last - first + 1)

        missing = missing_modules("services.audit.__main__")
        if missing:
            raw_rates = [await raw_round(i) for i in range(rounds)]
            raise NotAvailable(f"not available: {', '.join(missing)} not landed", median(raw_rates))
        raw_rates, pf_rates = await interleaved(rounds, raw_round, pf_round)
        result.raw_rate, result.policyflow_rate = median(raw_rates), median(pf_rates)
        result.extra.update(
            raw=spread(raw_rates),
            policyflow=spread(pf_rates),
            publish_rate=round(median(publish_rates), 1),
        )
        if stack.pg_url is None:
            result.extra["ledger_bytes"] = db.stat().st_size + sum(
                p.stat().st_size for p in db.parent.glob("audit.sqlite-*")
            )
        else:
            result.extra["raw_pull_only"] = spread(pull_only)
            result.extra["ledger_bytes"] = await pg_relation_bytes(stack.pg_url, "ledger")
        return result
    finally:
        await nc.close()
        await stack.close()
