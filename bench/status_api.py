"""Status API: `GET /v1/status` (the supervisors' read model) and `GET /v1/assignments/{id}` under
50 concurrent clients, vs the progress service's bare `/livez` (no auth, no I/O: the raw half),
from a load generator in a second process. `/healthz` (one small read of the projection
position) is measured beside them for reference. The read-model answers are kept by the service
until the read model changes (services/progress/answers.py; at rest, as here, every request after
the first is a hit), so each read-model route is also measured with `Cache-Control: no-cache`,
which computes every answer ("status_uncached", and "assignment_uncached" in a full run). A
quick run leaves out `/healthz`, the uncached assignment read and the uncached one-client figure.
`/v1/assignments/{id}` is measured twice: from the read model (`?source=read_model`,
"assignment") and as the live workflow query (the default, "assignment_live"). Requests/s
count 200 answers only; other answers (a query
that timed out: 503/504) are reported.

The progress service runs with `--opt workers=N` worker processes (default 2, PROGRESS_WORKERS;
`workers=1` is the single process; a quick run keeps the shared stack's single process unless
told otherwise, since two restarts of the service would take 20 of its 180 s); every target,
`/healthz` included, is served by the same processes. Rounds alternate the targets. The
headline ratio is `/v1/status` requests/s over `/livez` requests/s (target >= 0.5); the latency
target is p99 <= 50 ms on the read model.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from typing import Any

import httpx

from bench import pg
from bench.common import NotAvailable, Result, child_env, median, proc_cpu, spread, tree_cpu, unique
from bench.context import Context
from bench.driver import PfClient
from bench.programme import programme
from bench.stack import ALL_PROCESSES, BenchStack
from contracts.base import UserRole
from contracts.ids import assignment_id

NAME = "status_api"
UNIT = "requests/s"
TARGET_RATIO = 0.5
P99_TARGET_MS = 50.0
CONCURRENCY = 50
WORKERS = 2  # progress service processes (the machine has 2 cores; the load generator shares them)


async def loadgen(
    urls: list[str], headers: dict[str, str], duration: float, concurrency: int = CONCURRENCY, warmup: float = 1.0
) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.loadgen", f"--concurrency={concurrency}", f"--duration={duration}"]
    args.append(f"--warmup={warmup}")
    args += [f"--header={k}:{v}" for k, v in headers.items()]
    proc = await asyncio.create_subprocess_exec(
        *args, *urls, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env()
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed: {err.decode(errors='replace')[-1500:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def ensure_assignments(stack: BenchStack, pf: PfClient, wanted: int) -> list[str]:
    """At least `wanted` assignments in the read model (a shared stack may have them already);
    returns up to 500 of their ids."""
    headers = pf.headers(UserRole.SUPERVISOR)
    r = await pf.http.get(f"{stack.url('progress')}/v1/status", params={"limit": 500}, headers=headers)
    r.raise_for_status()
    page = r.json()
    if page["total"] < wanted:
        body = programme(unique("bench-status").removeprefix("bench-"), limit=wanted)
        await pf.import_programme(body.model_dump(mode="json"))
        await pf.dispatch(body.programme_id)
        await stack.settle()
        await read_model_holds(stack, pf, page["total"] + len(body.division.responsibilities))
        ids = [assignment_id(body.programme_id, x.task_no, x.unit_id) for x in body.division.responsibilities]
        return ids[:500]
    return [item["assignment_id"] for item in page["items"]]


async def read_model_holds(stack: BenchStack, pf: PfClient, wanted: int, timeout: float = 300.0) -> None:
    """Wait until the read model has `wanted` assignments: on a busy machine the stream can be
    quiet for a second (settled) while the worker has not published every dispatch yet."""
    deadline = time.monotonic() + timeout
    while True:
        r = await pf.http.get(f"{stack.url('progress')}/v1/status", params={"limit": 1},
                              headers={**pf.headers(UserRole.SUPERVISOR), "Cache-Control": "no-cache"})  # fmt: skip
        r.raise_for_status()
        if r.json()["total"] >= wanted or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.5)


def status_urls(base: str, ids: list[str]) -> list[str]:
    """What supervisors ask: the first page, one unit, one task, one stage, the overdue."""
    unit, task = ids[0].rsplit(".", 1)[-1], int(ids[0].split(".t", 1)[1].split(".", 1)[0])
    return [
        f"{base}/v1/status?limit=50",
        f"{base}/v1/status?unit_id={unit}",
        f"{base}/v1/status?task_no={task}&limit=50",
        f"{base}/v1/status?stage=assigned&limit=50",
        f"{base}/v1/status?overdue=any&limit=50",
    ]


async def run(ctx: Context) -> Result:
    duration, warmup = ctx.size(1.5, 15), 0.5 if ctx.quick else 2.0
    rounds = ctx.size(2, 3)
    workers = int(ctx.options.get("workers", 1 if ctx.quick else WORKERS))
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    result.extra.update(concurrency=CONCURRENCY, seconds_per_run=duration, p99_target_ms=P99_TARGET_MS,
                        progress_workers=workers)  # fmt: skip
    if ctx.db == "postgres":
        result.extra["postgres"] = await pg.server_settings()
    async with ctx.stack() as stack:
        with ctx.phase("policyflow processes"):
            unavailable = await stack.policyflow(*ALL_PROCESSES)
        if unavailable:
            raise NotAvailable(unavailable)
        async with httpx.AsyncClient(timeout=600.0) as http:
            pf = PfClient(stack, http)
            with ctx.phase("assignments in the read model"):
                ids = await ensure_assignments(stack, pf, ctx.size(100, 1300))
        if workers != 1:
            with ctx.phase(f"progress service with {workers} workers"):
                await restart_progress(stack, workers)
        with ctx.phase("the stack at rest"):  # not waited for in a smoke run (shared stack, no figures)
            # After a dispatch the worker and Temporal go on working for a minute (timers,
            # search attributes) after the stream is quiet: measured then, the first round of
            # every target was a third of the others (livez 2,162/s against 8,552 and 8,695).
            result.extra["rest"] = await at_rest(timeout=0 if ctx.smoke else ctx.size(30, 120))
        try:
            base = stack.url("progress")
            auth = pf.headers(UserRole.SUPERVISOR)
            fresh = {**auth, "Cache-Control": "no-cache"}  # computed for every request, then kept
            details = [f"{base}/v1/assignments/{a}?source=read_model" for a in ids[:100]]
            targets = {
                "livez": ([f"{base}/livez"], {}),
                "healthz": ([f"{base}/healthz"], {}),
                "status": (status_urls(base, ids), auth),
                "status_uncached": (status_urls(base, ids), fresh),
                "assignment": (details, auth),
                "assignment_live": ([f"{base}/v1/assignments/{a}" for a in ids[:100]], auth),
            }
            if ctx.quick:  # no time for the references in a quick run (3 minutes in all)
                del targets["healthz"]
            else:
                targets["assignment_uncached"] = (details, fresh)
            result.extra["cache_status"] = await cache_status(targets)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            order = list(targets)
            for i in range(rounds):
                for name in order if i % 2 == 0 else reversed(order):
                    urls, headers = targets[name]
                    out = await loadgen(urls, headers, duration, warmup=warmup)
                    runs[name].append(out)  # requests/s count 200s only; errors are reported beside them
                    ctx.log(f"  round {i + 1}/{rounds} {name}: {out['rps']:,.0f}/s p50 {out['p50_ms']} "
                            f"p99 {out['p99_ms']}")  # fmt: skip
            # Service time without queueing: one client at a time.
            single = {
                name: await loadgen(*targets[name], duration=ctx.size(1, 2), concurrency=1, warmup=0.5)
                for name in ("status", "assignment", "assignment_live") + (() if ctx.quick else ("status_uncached",))
            }
            rows = await read_model_rows(stack, auth)
        finally:
            if workers != 1:  # a shared (quick) stack goes on with the single process it started with
                await restart_progress(stack, 1)
    summary = {name: summarise(r) for name, r in runs.items()}
    for name in ("status_uncached", "assignment_uncached"):
        if summary.get(name, {}).get("cache", {}).get("hit"):  # then it did not measure what it says
            raise RuntimeError(f"{name}: {summary[name]['cache']['hit']} answers were kept ones")
    bare = summary["livez"]["rps"]
    result.raw_rate = bare

    def ratio(name: str) -> float | None:  # None: not measured in this run (quick)
        return round(summary[name]["rps"] / bare, 4) if name in summary else None

    # The headline is the service as it runs (answers kept, at rest nearly all hits); the
    # uncached rate, every answer computed, is beside it and in the table's note.
    result.policyflow_rate = summary["status"]["rps"]
    uncached = round(summary["status_uncached"]["rps"] / bare, 4)  # measured in every run
    result.extra.update(
        summary,
        summary=f"kept answers ({hit_share(summary['status']):.0%} hits); every answer computed: ratio "
        f"{uncached:.2f}, p99 {summary['status_uncached']['p99_ms']} ms",
        hit_share={name: hit_share(summary[name]) for name in summary if summary[name]["cache"]},
        raw_endpoint="/livez",
        healthz_ratio=ratio("healthz"),
        status_uncached_ratio=uncached,
        status_uncached_p99_met=summary["status_uncached"]["p99_ms"] <= P99_TARGET_MS,
        assignment_ratio=ratio("assignment"),
        assignment_live_ratio=ratio("assignment_live"),
        assignment_uncached_ratio=ratio("assignment_uncached"),
        status_p99_met=summary["status"]["p99_ms"] <= P99_TARGET_MS,
        assignment_p99_met=summary["assignment"]["p99_ms"] <= P99_TARGET_MS,
        read_model_rows=rows,
        one_client={name: {k: out[k] for k in ("rps", "p50_ms", "p99_ms")} for name, out in single.items()},
        note="closed loop: with 50 clients in flight, mean latency = 50 / throughput (Little's law)",
    )
    return result


async def cache_status(targets: dict[str, tuple[list[str], dict[str, str]]]) -> dict[str, str | None]:
    """What each target's second request says of its answer (`Cache-Status`): the cached targets
    must be hits and the uncached ones computed (`fwd=request`), or the figures mean nothing."""
    out: dict[str, str | None] = {}
    async with httpx.AsyncClient(timeout=30.0) as http:
        for name, (urls, headers) in targets.items():
            for _ in range(2):
                r = await http.get(urls[0], headers=headers)
                r.raise_for_status()
            out[name] = r.headers.get("cache-status")
    for name, want in (("status", "hit"), ("assignment", "hit"), ("status_uncached", "fwd=request"),
                       ("assignment_uncached", "fwd=request")):  # fmt: skip
        if name in out and want not in (out[name] or ""):
            raise RuntimeError(f"{name}: Cache-Status {out[name]!r}, expected {want}")
    return out


def hit_share(summary: dict[str, Any]) -> float:
    """The share of a target's counted answers that were kept ones (Cache-Status: hit)."""
    counts: dict[str, int] = summary["cache"]
    return round(counts.get("hit", 0) / max(1, sum(counts.values())), 4)


def _cpu_of_descendants() -> float:
    """CPU seconds used so far by this process's descendants that are still running (the
    stack's servers and services, spawned by this benchmark)."""
    me = os.getpid()
    return tree_cpu(me) - proc_cpu(me)


async def at_rest(busy: float = 0.1, window: float = 1.0, timeout: float = 120.0) -> dict[str, float]:
    """Wait until the stack's processes together use under `busy` of a core over `window`
    seconds (other work on the machine is not counted); returns how long that took."""
    started, used = time.monotonic(), 0.0
    last = _cpu_of_descendants()
    while time.monotonic() - started < timeout:
        await asyncio.sleep(window)
        now = _cpu_of_descendants()
        used, last = (now - last) / window, now
        if used < busy:
            return {"waited_s": round(time.monotonic() - started, 1), "cores_in_use": round(used, 3)}
    return {"waited_s": round(time.monotonic() - started, 1), "cores_in_use": round(used, 3), "timed_out": 1.0}


async def restart_progress(stack: BenchStack, workers: int) -> None:
    """Stop the progress service and start it again with `workers` processes (PROGRESS_WORKERS)."""
    stack.stop_process("progress")
    stack.spawn("progress", PROGRESS_WORKERS=str(workers))
    await stack.wait_healthy("progress")


async def read_model_rows(stack: BenchStack, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(timeout=30.0) as http:
        r = await http.get(f"{stack.url('progress')}/v1/status", params={"limit": 1}, headers=headers)
        r.raise_for_status()
        return int(r.json()["total"])


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": median([r["rps"] for r in runs]),
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "max_ms": max(r["max_ms"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "statuses": dict(sum((Counter(r["statuses"]) for r in runs), Counter())),
        "cache": dict(sum((Counter(r.get("cache", {})) for r in runs), Counter())),
        "rps_rounds": spread([r["rps"] for r in runs]),
    }
