"""Lifecycle steps: command round trips per second through the progress API (plan, review, quarterly
reports, verification request, verification, into the next year by continue-as-new) vs raw Temporal
updates whose handler runs one activity, with the same bodies, on the same dev server.

Both halves drive the same number of assignments at once, each sequentially through the same
script of `len(SCRIPT)` commands. Policyflow's assignments are dispatched and accepted before
timing. After each round both halves wait for the stream's readers to catch up (untimed), and
the CPU every process used for the round, readers included, is reported per step.
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
from bench.driver import PfClient, Step, year_script
from bench.programme import programme
from bench.raw_workflows import SIGNAL_FINISH, UPDATE_STEP, UPDATE_WORKFLOW
from bench.stack import ALL_PROCESSES
from contracts.ids import assignment_id

NAME = "lifecycle"
UNIT = "steps/s"
TARGET_RATIO = 0.6
PF_PROCESSES = ("worker", "assignment", "progress")
# The machine's year: quarterly reports are refused before their quarter begins.
START_YEAR = 2026
SCRIPT: list[Step] = year_script(START_YEAR, reports=4) + year_script(START_YEAR + 1, reports=0)


async def raw_round(client: Client, task_queue: str, clients: int) -> float:
    handles = await asyncio.gather(
        *(client.start_workflow(UPDATE_WORKFLOW, id=unique("raw-life"), task_queue=task_queue) for _ in range(clients))
    )

    async def drive(handle: Any) -> None:
        for step in SCRIPT:
            await handle.execute_update(UPDATE_STEP, step.body, result_type=int)

    started = time.perf_counter()
    await asyncio.gather(*(drive(h) for h in handles))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(h.signal(SIGNAL_FINISH) for h in handles))
    return clients * len(SCRIPT) / elapsed


async def prepare(pf: PfClient, count: int) -> list[str]:
    """Import and dispatch `count` assignments, and accept each (untimed)."""
    body = programme(unique("bench-life").removeprefix("bench-"), limit=count, min_horizon=START_YEAR + 2)
    await pf.import_programme(body.model_dump(mode="json"))
    await pf.dispatch(body.programme_id)
    ids = [assignment_id(body.programme_id, r.task_no, r.unit_id) for r in body.division.responsibilities]
    await gather_limited(16, [pf.accept(a) for a in ids])
    return ids


async def pf_round(pf: PfClient, ids: list[str]) -> float:
    async def drive(aid: str) -> None:
        for step in SCRIPT:
            await pf.step(aid, step)

    started = time.perf_counter()
    await asyncio.gather(*(drive(a) for a in ids))
    return len(ids) * len(SCRIPT) / (time.perf_counter() - started)


async def run(ctx: Context) -> Result:
    clients = ctx.size(4, 16)
    rounds = ctx.size(2, 4)
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    result.extra.update(clients=clients, steps_per_assignment=len(SCRIPT), script=[s.name for s in SCRIPT])
    async with ctx.stack() as stack:
        client = await stack.temporal()
        with ctx.phase("raw worker"):
            raw_worker = await stack.raw_worker()
            await raw_round(client, raw_worker.task_queue, 2)  # warm-up

        meter = CpuMeter(stack)

        async def raw_half(_: int) -> float:
            before = meter.snapshot()
            rate = await raw_round(client, raw_worker.task_queue, clients)
            await stack.settle()
            meter.add("raw", before, clients * len(SCRIPT))
            return rate

        with ctx.phase("policyflow processes"):
            unavailable = await stack.policyflow(*ALL_PROCESSES)
        if unavailable:
            raw = [await raw_half(i) for i in range(rounds)]
            raise NotAvailable(unavailable, median(raw), {"raw": spread(raw)})
        async with httpx.AsyncClient(timeout=120.0) as http:
            pf = PfClient(stack, http)
            with ctx.phase(f"import, dispatch and accept {clients * rounds} assignments"):
                ids = await prepare(pf, clients * rounds)
                await stack.settle()

            async def pf_half(i: int) -> float:
                before = meter.snapshot()
                # Every round takes the same mix of lead and cooperating units (the division
                # lists leads first). A cooperating unit's report also signals its lead's
                # workflow, so rounds of consecutive ids ran 22 down to 15 steps/s.
                rate = await pf_round(pf, ids[i::rounds])
                await stack.settle()
                meter.add("policyflow", before, clients * len(SCRIPT))
                return rate

            raw_rates, pf_rates = await interleaved(rounds, raw_half, pf_half)
        result.raw_rate, result.policyflow_rate = median(raw_rates), median(pf_rates)
        result.extra.update(raw=spread(raw_rates), policyflow=spread(pf_rates), cpu_ms_per_step=meter.per_unit_ms())
        result.extra["cpu_ms_per_step_by_round"] = meter.per_round_ms()
        return result
