"""Growth: the example programme at 1x (~1,300 assignments), 10x and 100x (~130,000; a nationwide
programme simulated by generating district-level units). For each size: import and dispatch time,
the time until every assignment is live (its first event in the audit ledger), resident memory
of the worker, the services and the servers, the ledger's size, each assignment's history size
(events in its current workflow run), and the latency of the status API's first page. One
assignment is also taken through two years, to show that continue-as-new keeps history bounded.

The raw rate beside each size is `start_workflow` of empty workflows on the same server at that
moment (up to `RAW_SAMPLE`), so the ratio shows how dispatch keeps up as the server fills.
`python -m bench growth --opt scales=1,10,100` picks the sizes (full default: 1,10; 100x takes
hours on two cores). `--opt live_budget=SECONDS` stops waiting for the assignments to be live
after that long and records how far they got (`live_complete: false`). A body over the
services' 1 MiB limit is imported in parts.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from bench.audit_ingest import pg_relation_bytes
from bench.common import RESULTS_DIR, NotAvailable, Result, proc_memory, unique
from bench.context import Context
from bench.dispatch import raw_start, wait_raw_done
from bench.driver import PfClient, year_script
from bench.lifecycle import START_YEAR
from bench.programme import example_size, programme
from bench.stack import ALL_PROCESSES, LEDGER_WAIT, BenchStack
from bench.status_api import loadgen
from contracts.api import ProgrammeImport
from contracts.base import UserRole
from contracts.ids import assignment_id, workflow_id

NAME = "growth"
UNIT = "assignments/s"
TARGET_RATIO = 0.7
RAW_SAMPLE = 2000
BODY_LIMIT = 1024 * 1024
HISTORY_SAMPLE = 20
DISPATCH_RETRIES = 3
PARTIAL = RESULTS_DIR / f"{NAME}.partial.json"  # each size as it finishes
PROGRESS = RESULTS_DIR / f"{NAME}.progress.json"  # the size in progress, every minute


def parts(body: ProgrammeImport, limit: int = BODY_LIMIT) -> list[ProgrammeImport]:
    """The programme as one import, or split by responsibilities into imports under the limit."""
    size = len(body.model_dump_json())
    if size <= limit:
        return [body]
    rows = body.division.responsibilities
    n = -(-size // int(limit * 0.8))
    step = -(-len(rows) // n)
    out = []
    for i in range(n):
        chunk = rows[i * step : (i + 1) * step]
        used = {r.unit_id for r in chunk}
        out.append(
            body.model_copy(
                update={
                    "programme_id": f"{body.programme_id}-p{i:02d}",
                    "units": [u for u in body.units if u.unit_id in used],
                    "division": body.division.model_copy(update={"responsibilities": chunk}),
                }
            )
        )
    return out


async def history_length(client: Client, aid: str) -> int:
    """Events in the assignment's current run (continue-as-new starts a new, short one)."""
    handle = client.get_workflow_handle(workflow_id(aid))
    return len((await handle.fetch_history()).events)


def memory(stack: BenchStack) -> dict[str, dict[str, float]]:
    out = {name: proc_memory(pid) for name, pid in stack.pids().items()}
    for server in stack.stack.servers:
        if server.proc is not None:
            out[server.name] = proc_memory(server.proc.pid)
    return out


def disk_bytes(directory: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in directory.glob(pattern) if p.is_file())


async def rows(pf: PfClient) -> int:
    r = await pf.http.get(
        f"{pf.stack.url('progress')}/v1/status", params={"limit": 1}, headers=pf.headers(UserRole.SUPERVISOR)
    )
    r.raise_for_status()
    return int(r.json()["total"])


class Tracker:
    """A long size's progress, logged and written to PROGRESS every minute (and after each
    dispatched part), so that a run stopped before the end still says how far it got and how fast."""

    def __init__(
        self, ctx: Context, stack: BenchStack, label: str, count: int, ledger_before: int, target: int
    ) -> None:
        self.ctx, self.stack, self.label, self.count, self.ledger_before = ctx, stack, label, count, ledger_before
        self.target = target  # entries the ledger must gain: each first event and each part's import
        self.started = self.last = time.perf_counter()
        self.points: list[dict[str, Any]] = []

    async def tick(self, every: float = 60.0, **fields: Any) -> None:
        if time.perf_counter() - self.last >= every:
            await self.note("waiting until every assignment is live", **fields)

    async def note(self, what: str, **fields: Any) -> None:
        self.last = now = time.perf_counter()
        try:
            added: int | None = await self.stack.ledger_size() - self.ledger_before
        except httpx.HTTPError:  # a slow answer must not stop a run of hours: noted as unknown
            added = None
        point = {"seconds": round(now - self.started, 1), "what": what, "ledger_entries_added": added,
                 "ledger_target": self.target, **fields}  # fmt: skip
        point["memory_mib"] = {k: v.get("rss_mib") for k, v in memory(self.stack).items()}
        self.points.append(point)
        self.ctx.log(f"  {self.label}: {point['seconds']:.0f}s {what}, ledger {added}/{self.target}, {fields}")
        if not self.ctx.smoke:
            write_atomically(PROGRESS, {"label": self.label, "assignments": self.count, "points": self.points})


def write_atomically(path: Path, data: Any) -> None:
    """A stopped run leaves the previous whole file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".tmp")
    part.write_text(json.dumps(data, indent=2) + "\n")
    part.replace(path)


async def one_size(ctx: Context, stack: BenchStack, pf: PfClient, label: str, body: ProgrammeImport) -> dict[str, Any]:
    client = await stack.temporal()
    raw_worker = await stack.raw_worker()
    count = len(body.division.responsibilities)
    raw_rate = await raw_start(client, raw_worker.task_queue, min(count, ctx.size(50, RAW_SAMPLE)))
    await wait_raw_done(client, raw_worker.task_queue)
    await stack.settle()
    ledger_before = await stack.ledger_size()
    pieces = parts(body)
    started = time.perf_counter()
    for piece in pieces:
        await pf.import_programme(piece.model_dump(mode="json"))
    import_s = time.perf_counter() - started
    dispatch_s, dispatched, retried = 0.0, 0, []
    # The target is every responsibility until the dispatch says how many it started.
    track = Tracker(ctx, stack, label, count, ledger_before, target=count + len(pieces))
    for i, piece in enumerate(pieces):
        # At 100x the dev server has answered a few starts with errors under load; the service
        # then answers 503 "dispatch again", and the benchmark does, as a user would (counted).
        seconds, out = await pf.dispatch(piece.programme_id, retries=DISPATCH_RETRIES)
        dispatch_s += seconds
        dispatched += int(out["started"])
        retried += out.get("retried", [])
        await track.note(f"part {i + 1}/{len(pieces)} dispatched", dispatched=dispatched,
                         dispatch_seconds=round(dispatch_s, 1))  # fmt: skip
    live_started = time.perf_counter()
    # Live: every assignment's first event (and each part's ProgrammeImported) is in the ledger.
    track.target = dispatched + len(pieces)
    target = ledger_before + track.target
    budget = ctx.options.get("live_budget")  # asked for: the figures as far as the run got, marked incomplete
    size = await stack.wait_ledger(
        target, float(budget) if budget else LEDGER_WAIT, partial=budget is not None,
        tick=lambda: track.tick(dispatched=dispatched, dispatch_seconds=round(dispatch_s, 1)),
    )  # fmt: skip
    live_s = time.perf_counter() - live_started + dispatch_s
    live_entries = size - ledger_before
    complete = size >= target
    if complete:  # otherwise the worker is still busy, and the stream never settles
        await stack.settle(timeout=3600)
    ids = [assignment_id(p.programme_id, r.task_no, r.unit_id) for p in pieces for r in p.division.responsibilities]
    sample = ids[:: max(1, len(ids) // HISTORY_SAMPLE)][:HISTORY_SAMPLE]
    histories = [await history_length(client, a) for a in sample]
    # How the supervisors' first page answers as the read model grows (one client: no queueing).
    page = await loadgen(
        [f"{stack.url('progress')}/v1/status?limit=50"], pf.headers(UserRole.SUPERVISOR), 2, concurrency=1, warmup=0.3
    )
    row = {
        "label": label,
        "assignments": count,
        "import_parts": len(pieces),
        "import_seconds": round(import_s, 2),
        "dispatch_seconds": round(dispatch_s, 2),
        "dispatched": dispatched,
        "dispatch_retries": retried,
        "dispatch_rate": round(dispatched / dispatch_s, 2),
        "raw_start_rate": round(raw_rate, 2),
        "live_seconds": round(live_s, 1),
        "live_rate": round((live_entries - len(pieces)) / live_s, 2),
        "live_complete": complete,
        "ms_per_assignment": round(1000 * dispatch_s / max(1, dispatched), 2),
        "ledger_entries_added": await stack.ledger_size() - ledger_before,
        "ledger_bytes": disk_bytes(stack.var_dir, "audit.sqlite*")
        if stack.pg_url is None
        else await pg_relation_bytes(stack.pg_url, "ledger"),
        "temporal_db_bytes": disk_bytes(stack.var_dir / "temporal", "temporal.sqlite*"),
        "history_events": {"min": min(histories), "max": max(histories), "sampled": len(histories)},
        "memory_mib": memory(stack),
        "status_first_page_ms": {"p50": page["p50_ms"], "p99": page["p99_ms"], "read_model_rows": await rows(pf)},
        "progress": track.points,
    }
    ctx.log(
        f"  {label}: {count} assignments, dispatch {dispatch_s:.1f}s ({row['dispatch_rate']}/s, raw {raw_rate:.0f}/s), "
        f"live after {live_s:.0f}s, history {row['history_events']}"
    )
    return row


async def bounded_history(stack: BenchStack, pf: PfClient) -> dict[str, Any]:
    """One assignment through its first year and the next: history per run stays small."""
    body = programme(unique("bench-hist").removeprefix("bench-"), limit=1, min_horizon=START_YEAR + 2)
    await pf.import_programme(body.model_dump(mode="json"))
    await pf.dispatch(body.programme_id)
    r = body.division.responsibilities[0]
    aid = assignment_id(body.programme_id, r.task_no, r.unit_id)
    client = await stack.temporal()
    lengths = {"dispatched": await history_length(client, aid)}
    await pf.accept(aid)
    script = year_script(START_YEAR, reports=4)
    for step in script[:-1]:
        await pf.step(aid, step)
    lengths["year_1_before_verification"] = await history_length(client, aid)
    await pf.step(aid, script[-1])
    await asyncio.sleep(1.0)
    lengths["year_2_after_continue_as_new"] = await history_length(client, aid)
    for step in year_script(START_YEAR + 1, reports=0):
        await pf.step(aid, step)
    await asyncio.sleep(1.0)
    lengths["year_3_after_continue_as_new"] = await history_length(client, aid)
    return lengths


async def run(ctx: Context) -> Result:
    if ctx.quick:
        small = ctx.size(20, 20)
        sizes = [("1x subset", programme(unique("g1").replace("-", ""), limit=small)),
                 ("10x subset", programme(unique("g10").replace("-", ""), scale=10, limit=10 * small))]  # fmt: skip
    else:
        scales = [float(s) for s in ctx.options.get("scales", "1,10").split(",")]
        sizes = [(f"{s:g}x", programme(unique(f"g{s:g}").replace("-", ""), scale=s)) for s in scales]
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    result.extra.update(example_assignments=example_size(), body_limit_bytes=BODY_LIMIT)
    if not ctx.smoke:  # the files of an earlier run are not this one's
        PARTIAL.unlink(missing_ok=True)
        PROGRESS.unlink(missing_ok=True)
    async with ctx.stack() as stack:
        with ctx.phase("policyflow processes"):
            unavailable = await stack.policyflow(*ALL_PROCESSES)
        if unavailable:
            raise NotAvailable(unavailable)
        async with httpx.AsyncClient(timeout=4 * 3600.0) as http:
            pf = PfClient(stack, http)
            series = []
            for label, body in sizes:
                series.append(await one_size(ctx, stack, pf, label, body))
                if not ctx.smoke:  # a long run that is stopped keeps the sizes it finished
                    write_atomically(PARTIAL, {"series": series})
            if all(row["live_complete"] for row in series):
                history = await bounded_history(stack, pf)
            else:  # the worker still has a backlog of first tasks: its commands would wait behind them
                history = {"skipped": "a size stopped before all its assignments were live (live_budget)"}
    first, last = series[0], series[-1]
    result.raw_rate, result.policyflow_rate = last["raw_start_rate"], last["dispatch_rate"]
    result.extra.update(
        series=series,
        history_per_run=history,
        linearity=round(last["dispatch_rate"] / first["dispatch_rate"], 3),
        summary=f"{first['label']} -> {last['label']}: {first['dispatch_rate']} -> {last['dispatch_rate']}/s",
    )
    return result
