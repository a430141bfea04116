"""The soak's after-the-fact checks: every acknowledged event in the audit ledger, memory over time."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from bench import pg
from bench.stack import BenchStack


async def acknowledged_in_ledger(stack: BenchStack, event_ids: list[str], timeout: float = 600.0) -> dict[str, Any]:
    """How many of `event_ids` the audit ledger holds, waiting up to `timeout` for the last ones;
    also the ledger's size against the stream's (every event of the stream once in the ledger)."""
    wanted = set(event_ids)
    deadline = time.monotonic() + timeout
    while True:
        found = await _found(stack, sorted(wanted))
        if len(found) == len(wanted) or time.monotonic() > deadline:
            break
        await asyncio.sleep(2.0)
    missing = sorted(wanted - found)
    nc = await stack.nats()
    try:
        from contracts.subjects import EVENT_STREAM

        stream = int((await nc.jetstream().stream_info(EVENT_STREAM)).state.messages)
    finally:
        await nc.close()
    ledger, distinct = await _ledger_counts(stack)
    return {
        "acknowledged": len(wanted), "found": len(found), "missing": len(missing), "missing_examples": missing[:10],
        "ledger_entries": ledger, "ledger_distinct_event_ids": distinct, "stream_messages": stream,
    }  # fmt: skip


async def _found(stack: BenchStack, ids: list[str]) -> set[str]:
    if stack.pg_url is not None:
        conn = await pg.connect(stack.pg_url)
        try:
            rows = await conn.fetch("SELECT event_id FROM ledger WHERE event_id = ANY($1::text[])", ids)
            return {r["event_id"] for r in rows}
        finally:
            await conn.close()
    found: set[str] = set()
    with sqlite3.connect(f"file:{stack.var_dir / 'audit.sqlite'}?mode=ro", uri=True, timeout=10) as conn:
        for lo in range(0, len(ids), 500):
            part = ids[lo : lo + 500]
            sql = f"SELECT event_id FROM ledger WHERE event_id IN ({','.join('?' * len(part))})"
            found.update(r[0] for r in conn.execute(sql, part))
    return found


async def _ledger_counts(stack: BenchStack) -> tuple[int, int]:
    sql = "SELECT count(*), count(DISTINCT event_id) FROM ledger"
    if stack.pg_url is not None:
        conn = await pg.connect(stack.pg_url)
        try:
            row = await conn.fetchrow(sql)
            return int(row[0]), int(row[1])
        finally:
            await conn.close()
    with sqlite3.connect(f"file:{stack.var_dir / 'audit.sqlite'}?mode=ro", uri=True, timeout=10) as conn:
        total, distinct = conn.execute(sql).fetchone()
        return int(total), int(distinct)


def memory_trend(samples: list[dict[str, Any]], kills: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per process, resident memory in the second and the last minute of its longest life (a
    killed process starts again from nothing; the first minute is its warm-up), and the growth
    between them in MiB per 10 minutes."""
    names = {k for row in samples for k in row if k != "at_s"}
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        cuts = [0.0] + [k["at_s"] for k in kills if k["process"] == name] + [float("inf")]
        lives = [
            [r for r in samples if lo <= r["at_s"] < hi and r.get(name)] for lo, hi in zip(cuts, cuts[1:], strict=False)
        ]
        life = max(lives, key=lambda rows: rows[-1]["at_s"] - rows[0]["at_s"] if rows else -1.0)
        if len(life) < 2:
            continue
        t0, t1 = life[0]["at_s"], life[-1]["at_s"]
        warm = t0 + 60 if t1 - t0 >= 180 else t0
        first = [r[name] for r in life if warm <= r["at_s"] < warm + 60]
        last = [r[name] for r in life if r["at_s"] > t1 - 60]
        span = max(1.0, t1 - warm)
        grow = (sum(last) / len(last) - sum(first) / len(first)) / span * 600
        out[name] = {
            "life_s": round(span), "second_minute_mib": round(sum(first) / len(first), 1),
            "last_minute_mib": round(sum(last) / len(last), 1), "peak_mib": max(r[name] for r in life),
            "mib_per_10_min": round(grow, 1),
        }  # fmt: skip
    return out
