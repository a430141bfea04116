"""Dispatch: assignments started per second through `POST /v1/programmes/{id}/dispatch`
vs raw `client.start_workflow` of an empty workflow on the same Temporal dev server.

Each policyflow round imports the example programme under a fresh id and times one dispatch
call; each raw round starts as many empty workflows, `RAW_CONCURRENCY` in flight. Between
rounds both halves wait until the workflows they started have gone quiet, so one half's
backlog does not slow the other.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from temporalio.client import Client

from bench.common import Context, NotAvailable, Result, interleaved, median, spread, unique
from bench.programme import example_size, programme
from bench.raw_workflows import EMPTY_WORKFLOW
from bench.stack import BenchStack, RawWorker, gather_limited, start_policyflow
from contracts.base import UserRole
from contracts.subjects import EVENT_STREAM

NAME = "dispatch"
UNIT = "assignments/s"
TARGET_RATIO = 0.7
RAW_CONCURRENCY = 64
PF_PROCESSES = ("worker", "assignment")


async def raw_start(client: Client, task_queue: str, count: int, concurrency: int = RAW_CONCURRENCY) -> float:
    """Start `count` empty workflows; the rate at which the server accepted them."""
    prefix = unique("raw-dispatch")
    started = time.perf_counter()
    await gather_limited(
        concurrency,
        [client.start_workflow(EMPTY_WORKFLOW, id=f"{prefix}-{i}", task_queue=task_queue) for i in range(count)],
    )
    return count / (time.perf_counter() - started)


async def wait_raw_done(client: Client, task_queue: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    while time.monotonic() < deadline:
        if (await client.count_workflows(query)).count == 0:
            return
        await asyncio.sleep(0.25)


async def settle_stream(stack: BenchStack, quiet: float = 1.5, timeout: float = 120.0) -> int:
    """Wait until the event stream stops growing (the workflows just started have published)."""
    nc = await stack.nats()
    try:
        js = nc.jetstream()
        last, since = -1, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seq = int((await js.stream_info(EVENT_STREAM)).state.last_seq)
            if seq != last:
                last, since = seq, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            await asyncio.sleep(0.25)
        return last
    finally:
        await nc.close()


async def import_programme(http: httpx.AsyncClient, stack: BenchStack, body: dict[str, Any]) -> None:
    r = await http.post(
        f"{stack.url('assignment')}/v1/programmes", json=body, headers=stack.headers(UserRole.SUPERVISOR)
    )
    if r.status_code not in (200, 201):
        raise RuntimeError(f"import failed: {r.status_code} {r.text[:500]}")


async def pf_dispatch(http: httpx.AsyncClient, stack: BenchStack, programme_id: str) -> tuple[float, dict[str, Any]]:
    """Time one dispatch call: (seconds, response body)."""
    started = time.perf_counter()
    r = await http.post(
        f"{stack.url('assignment')}/v1/programmes/{programme_id}/dispatch", headers=stack.headers(UserRole.SUPERVISOR)
    )
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"dispatch failed: {r.status_code} {r.text[:500]}")
    return elapsed, r.json()


async def run(ctx: Context) -> Result:
    size = ctx.size(300, example_size())
    rounds = ctx.size(2, 4)
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    result.extra.update(assignments_per_round=size, raw_concurrency=RAW_CONCURRENCY)
    stack = BenchStack(ctx.work_dir)
    await stack.start_servers()
    raw_worker = RawWorker(stack)
    try:
        client = await stack.temporal()
        await raw_worker.start()
        await raw_start(client, raw_worker.task_queue, 50)  # warm the connection and the worker
        await wait_raw_done(client, raw_worker.task_queue)

        async def raw_round(_: int) -> float:
            rate = await raw_start(client, raw_worker.task_queue, size)
            await wait_raw_done(client, raw_worker.task_queue)
            return rate

        unavailable = await start_policyflow(stack, *PF_PROCESSES)
        if unavailable:
            raw_rates = [await raw_round(i) for i in range(rounds)]
            raise NotAvailable(unavailable, median(raw_rates), {"raw": spread(raw_rates)})
        timings: list[dict[str, Any]] = []
        async with httpx.AsyncClient(timeout=600.0) as http:

            async def pf_round(i: int) -> float:
                programme_id = f"bench-d{i}-{unique('p')[2:]}"
                await import_programme(http, stack, programme(programme_id, limit=size).model_dump(mode="json"))
                seconds, body = await pf_dispatch(http, stack, programme_id)
                started = int(body.get("started", 0))
                if started != size:
                    raise RuntimeError(f"dispatch started {started} of {size}: {body}")
                await settle_stream(stack)
                timings.append({"seconds": round(seconds, 3), "started": started})
                return started / seconds

            raw_rates, pf_rates = await interleaved(rounds, raw_round, pf_round)
        result.raw_rate, result.policyflow_rate = median(raw_rates), median(pf_rates)
        result.extra.update(raw=spread(raw_rates), policyflow=spread(pf_rates), dispatch_calls=timings)
        return result
    finally:
        raw_worker.stop()
        await stack.close()
