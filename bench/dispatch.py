"""Dispatch: assignments started per second through `POST /v1/programmes/{id}/dispatch`
vs raw `client.start_workflow` of an empty workflow on the same Temporal dev server.

Each policyflow round imports the example programme under a fresh id and times one dispatch
call (the service starts `dispatch_concurrency` = 64 workflows at a time); each raw round starts
as many empty workflows, 64 in flight. The whole stack runs (worker, services, consumers), as
deployed; between rounds both halves wait until the stream and its consumers are quiet, so one
half's backlog does not slow the other.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from temporalio.client import Client

from bench.common import NotAvailable, Result, gather_limited, interleaved, median, spread, unique
from bench.context import Context
from bench.cpu_meter import CpuMeter
from bench.driver import PfClient
from bench.programme import example_size, programme
from bench.raw_workflows import EMPTY_WORKFLOW
from bench.stack import ALL_PROCESSES

NAME = "dispatch"
UNIT = "assignments/s"
TARGET_RATIO = 0.7
RAW_CONCURRENCY = 64


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


async def pf_dispatch(pf: PfClient, size: int, label: str) -> tuple[float, dict[str, Any]]:
    """Import a programme of `size` responsibilities under a fresh id and time its dispatch."""
    body = programme(unique(f"bench-{label}").removeprefix("bench-"), limit=size)
    await pf.import_programme(body.model_dump(mode="json"))
    seconds, out = await pf.dispatch(body.programme_id)
    if int(out.get("started", 0)) != len(body.division.responsibilities):
        raise RuntimeError(f"dispatch started {out.get('started')} of {len(body.division.responsibilities)}: {out}")
    return seconds, out


async def run(ctx: Context) -> Result:
    size = ctx.size(60, example_size())
    rounds = ctx.size(2, 4)
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    result.extra.update(assignments_per_round=size, raw_concurrency=RAW_CONCURRENCY)
    async with ctx.stack() as stack:
        client = await stack.temporal()
        with ctx.phase("raw worker"):
            raw_worker = await stack.raw_worker()
            await raw_start(client, raw_worker.task_queue, 50)  # warm the connection and the worker
            await wait_raw_done(client, raw_worker.task_queue)

        raw_done: list[float] = []
        meter = CpuMeter(stack)

        async def raw_round(_: int) -> float:
            before = meter.snapshot()
            started = time.perf_counter()
            rate = await raw_start(client, raw_worker.task_queue, size)
            await wait_raw_done(client, raw_worker.task_queue)
            raw_done.append(size / (time.perf_counter() - started))
            await stack.settle()
            meter.add("raw", before, size)
            return rate

        with ctx.phase("policyflow processes"):
            unavailable = await stack.policyflow(*ALL_PROCESSES)
        if unavailable:
            raw_rates = [await raw_round(i) for i in range(rounds)]
            raise NotAvailable(unavailable, median(raw_rates), {"raw": spread(raw_rates)})
        calls: list[dict[str, Any]] = []
        async with httpx.AsyncClient(timeout=600.0) as http:
            pf = PfClient(stack, http)

            async def pf_round(_: int) -> float:
                cpu_before = meter.snapshot()
                before = await stack.ledger_size()
                seconds, out = await pf_dispatch(pf, size, "d")
                live = time.perf_counter()
                await stack.wait_ledger(before + int(out["started"]) + 1)  # each started, and the import
                live_s = seconds + time.perf_counter() - live
                await stack.settle()
                meter.add("policyflow", cpu_before, int(out["started"]))
                calls.append(
                    {"seconds": round(seconds, 3), "started": out["started"], "live_seconds": round(live_s, 2)}
                )
                return int(out["started"]) / seconds

            raw_rates, pf_rates = await interleaved(rounds, raw_round, pf_round)
        result.raw_rate, result.policyflow_rate = median(raw_rates), median(pf_rates)
        live = [c["started"] / c["live_seconds"] for c in calls]
        result.extra.update(
            raw=spread(raw_rates),
            policyflow=spread(pf_rates),
            dispatch_calls=calls,
            cpu_ms_per_assignment=meter.per_unit_ms(),
            end_to_end={
                "raw_completed_per_s": round(median(raw_done), 2),
                "policyflow_live_per_s": round(median(live), 2),
                "ratio": round(median(live) / median(raw_done), 4),
                "meaning": "raw: empty workflows started and completed; policyflow: assignments started and "
                "their AssignmentCreated event in the audit ledger",
            },
        )
        return result
