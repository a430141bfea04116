"""Read-model lag: how fast the progress read model folds the event stream into its rows, and how
long an event takes to be readable there, vs a raw consumer writing the same rows on the same
database.

Throughput: a block of lifecycle events is published while the progress service is stopped;
then the raw half drains it with a nats-py pull consumer that, per batch of 500, upserts one row
per assignment (the event's JSON, its sequence) and the consumer position in one transaction
(asyncpg on PostgreSQL, the stdlib sqlite3 at synchronous=FULL on SQLite), then acks; and the
progress service is started and folds the same block (watched through its stored position).
Both rates are steady state, from the first batch to the last event.

Lag: with the read model caught up, single events are published one after another; each one's
lag is from its publish acknowledgement until the read model's position reaches it (polled
every 5 ms), for the progress service and for the raw consumer running in this process.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy.exc import DBAPIError

from bench import pg
from bench.audit_ingest import BATCH, publish_block, raw_drain_config
from bench.common import Result, interleaved, median, percentile, spread
from bench.context import Context
from bench.events import events
from bench.raw_rows import RawRows
from contracts.subjects import EVENT_STREAM, event_subject
from services.progress import readmodel
from services.shared.db import make_engine

NAME = "readmodel_lag"
UNIT = "events/s"
TARGET_RATIO = 0.5


async def raw_fold(
    js: JetStreamContext, rows: RawRows, first: int, count: int, stop: asyncio.Event | None = None
) -> float:
    """Drain `count` events from stream seq `first` into `rows`; with `stop`, run until it is set."""
    durable, config = raw_drain_config(first)
    sub = await js.pull_subscribe(config.filter_subject or "", durable=durable, stream=EVENT_STREAM, config=config)
    try:
        got, t1, c1 = 0, 0.0, 0
        while (got < count) if stop is None else not stop.is_set():
            try:
                msgs = await sub.fetch(BATCH, timeout=10 if stop is None else 0.05)
            except TimeoutError:
                continue
            if not msgs:
                continue
            batch = {}
            for m in msgs:
                aid = json.loads(m.data).get("assignment_id")
                batch[aid] = (aid, m.metadata.sequence.stream, m.data.decode())
            await rows.apply(list(batch.values()), msgs[-1].metadata.sequence.stream)
            for m in msgs:
                await m.ack()
            got += len(msgs)
            if not t1:
                t1, c1 = time.perf_counter(), got
        return (got - c1) / max(1e-9, time.perf_counter() - t1)
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(EVENT_STREAM, durable)


async def wait_position(read: Any, target: int, timeout: float = 600.0, tick: float = 0.005) -> tuple[float, int]:
    """Poll `read()` until it reaches `target`; returns (steady rate from the first change, start)."""
    start = await read()
    t1, c1, deadline = 0.0, start, time.monotonic() + timeout
    while (pos := await read()) < target:
        if pos > start and not t1:
            t1, c1 = time.perf_counter(), pos
        if time.monotonic() > deadline:
            raise RuntimeError(f"read model at {pos} of {target} after {timeout:.0f}s")
        await asyncio.sleep(tick)
    if not t1 or pos == c1:
        return 0.0, start
    return (pos - c1) / (time.perf_counter() - t1), start


async def lags(js: JetStreamContext, read: Any, programme_id: str, count: int) -> list[float]:
    """Publish `count` events one at a time; each one's ms from publish ack to `read()` reaching it."""
    out = []
    for e in events(programme_id, count):
        ack = await js.publish(event_subject(e.programme_id, e.unit_id, e.type), e.model_dump_json().encode(),
                               stream=EVENT_STREAM, headers={"Nats-Msg-Id": e.event_id})  # fmt: skip
        t0 = time.perf_counter()
        deadline = time.monotonic() + 60
        while await read() < ack.seq and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        out.append(1000 * (time.perf_counter() - t0))
    return sorted(out)


def lag_summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50), 1), "p99_ms": round(percentile(values, 99), 1),
            "max_ms": round(max(values), 1) if values else 0.0}  # fmt: skip


async def run(ctx: Context) -> Result:
    block = int(ctx.options.get("events", ctx.size(4_000, 40_000)))
    rounds = int(ctx.options.get("rounds", ctx.size(2, 3)))
    singles = ctx.size(50, 300)
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    result.extra.update(events_per_round=block, batch=BATCH, lag_events=singles, db=ctx.db)
    if ctx.db == "postgres":
        result.extra["postgres"] = await pg.server_settings()
    async with ctx.stack() as stack:
        await stack.start("progress")
        nc = await stack.nats()
        js = nc.jetstream()
        engine = make_engine(stack.database_url("progress"))
        rows = await RawRows.open(stack.pg_url, stack.var_dir / "raw-read-model.sqlite")
        blocks: list[tuple[int, int]] = []

        async def pf_position() -> int:
            try:
                return await readmodel.position(engine)
            except DBAPIError:  # its tables are not there yet
                return 0

        try:

            async def block_for(i: int) -> tuple[int, int]:
                while len(blocks) <= i:
                    first, last, _ = await publish_block(js, f"bench-lag-{len(blocks)}", block)
                    blocks.append((first, last))
                return blocks[i]

            async def raw_round(i: int) -> float:
                stack.stop_process("progress")  # the block waits for the policyflow round
                first, last = await block_for(i)
                return await raw_fold(js, rows, first, last - first + 1)

            async def pf_round(i: int) -> float:
                stack.stop_process("progress")
                first, last = await block_for(i)
                stack.spawn("progress")
                rate, _ = await wait_position(pf_position, last)
                await stack.wait_healthy("progress")
                return rate

            stack.stop_process("progress")
            raw_rates, pf_rates = await interleaved(rounds, raw_round, pf_round)
            result.raw_rate, result.policyflow_rate = median(raw_rates), median(pf_rates)
            await stack.start("progress")  # a raw round may have been the last
            await stack.settle()
            pf_lags = await lags(js, pf_position, "bench-lag-pf", singles)
            stop = asyncio.Event()
            head = int((await js.stream_info(EVENT_STREAM)).state.last_seq) + 1
            raw_task = asyncio.create_task(raw_fold(js, rows, head, 0, stop))
            await asyncio.sleep(0.5)
            raw_lags = await lags(js, rows.position, "bench-lag-raw", singles)
            stop.set()
            await raw_task
            result.extra.update(
                raw=spread(raw_rates), policyflow=spread(pf_rates),
                lag={"policyflow": lag_summary(pf_lags), "raw": lag_summary(raw_lags)},
                summary=f"lag p50/p99 {percentile(pf_lags, 50):.0f}/{percentile(pf_lags, 99):.0f} ms "
                f"(raw {percentile(raw_lags, 50):.0f}/{percentile(raw_lags, 99):.0f} ms)",
            )  # fmt: skip
            return result
        finally:
            await rows.close()
            await engine.dispose()
            await nc.close()
            if "progress" not in stack.children:
                await stack.start("progress")
