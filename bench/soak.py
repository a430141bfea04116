"""Soak: mixed commands from simulated officials for a long time, with a policyflow process killed
(SIGKILL) at random every few minutes, on PostgreSQL by default.

`python -m bench soak --opt minutes=30` (defaults: 30 minutes, 50 officials, a kill every 180 s;
`--opt officials=N --opt kill_every=S --opt db=sqlite` change them; the smoke test runs half a
minute with a kill every 10 s). The stack is the soak's own (never the shared one), with the
services on a fresh PostgreSQL database.

Each official takes a freshly dispatched assignment and drives it through a year and a half of
commands (accept, plan, review, four reports, verification request, verification, the next
year's plan, review, request, verification), as the department, supervisor and verifier in
turn, and now and then reads the supervisors' status page. After every acknowledged command it
reads the assignment from the read model (`?source=read_model`, `Cache-Control: no-cache`) until
the command's effect is there: that wait is the read-after-write lag. A command that meets a
killed process is sent again with the same `Idempotency-Key` until it is answered, as a client
should; its time counts from the first attempt. An admin dispatches a new programme part
whenever fewer assignments are waiting than officials.

At the end the stack is given time to settle and every event id of every acknowledged command is
looked up in the audit ledger: nothing acknowledged may be missing. Per minute: commands,
p50/p99 of a command, p50/p99 of the lag, retries; every 10 s the resident memory of each process.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import pg
from bench.common import Result, median, percentile, proc_memory, unique
from bench.context import Context
from bench.driver import PfClient, Step, unit_of, year_script
from bench.programme import programme
from bench.soak_check import acknowledged_in_ledger, memory_trend
from bench.stack import ALL_PROCESSES, BenchStack
from contracts.base import UserRole
from contracts.ids import assignment_id

NAME = "soak"
UNIT = "commands/s"
TARGET_RATIO = None
START_YEAR = 2026  # the machine's year: quarterly reports are refused before their quarter begins
SCRIPT: list[Step] = [Step("accept", UserRole.DEPARTMENT, "accept", {})]
SCRIPT += year_script(START_YEAR, reports=4) + year_script(START_YEAR + 1, reports=0)
PART = 200  # assignments per dispatched programme part
RETRY_FOR = 300.0  # how long a command is sent again while a killed process comes back
LAG_LIMIT = 120.0  # a read model that shows nothing this long after a command counts as "not seen"
TRANSIENT = {502, 503, 504}
SHOWN = ("stage", "year", "percent", "counts", "plan", "last_report", "last_verification")


@dataclass
class Sample:
    at: float  # seconds since the soak began, when the command was acknowledged
    step: str
    command_ms: float  # first attempt to acknowledgement
    attempts: int
    lag_ms: float | None  # acknowledgement to the read model showing it; None: not seen in time


@dataclass
class Soak:
    stack: BenchStack
    pf: PfClient
    officials: int
    ends_at: float
    started: float = field(default_factory=time.monotonic)
    waiting: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    samples: list[Sample] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # event ids of every acknowledged command
    refused: list[str] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)
    parts: int = 0
    retry_causes: Counter[str] = field(default_factory=Counter)  # why requests were sent again

    def now(self) -> float:
        return time.monotonic() - self.started

    def running(self) -> bool:
        return time.monotonic() < self.ends_at

    async def send(self, method: str, service: str, path: str, role: UserRole, unit: str | None = None,
                   body: Any = None, key: str | None = None) -> tuple[httpx.Response, int]:  # fmt: skip
        """The request, sent again after a dropped connection or a 502/503/504 (a process that was
        killed and is coming back), with the same Idempotency-Key; the answer and the attempts."""
        headers = dict(self.pf.headers(role, unit))
        if key is not None:
            headers["Idempotency-Key"] = key
        deadline, attempts = time.monotonic() + RETRY_FOR, 0
        while True:
            attempts += 1
            try:
                r = await self.pf.http.request(method, f"{self.stack.url(service)}{path}", json=body, headers=headers)
                if r.status_code not in TRANSIENT or time.monotonic() > deadline:
                    return r, attempts
                self.retry_causes[f"{r.status_code} {service}"] += 1
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise
                self.retry_causes[f"{type(exc).__name__} {service}"] += 1
            await asyncio.sleep(0.5)

    async def until_changed(self, aid: str, unit: str, before: dict[str, Any] | None) -> float | None:
        """Seconds until the read model's copy differs from `before`; None after LAG_LIMIT."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < LAG_LIMIT:
            now = await self.shown_fresh(aid, unit)
            if now is not None and now != before:
                return time.monotonic() - t0
            await asyncio.sleep(0.025)
        return None

    async def shown_fresh(self, aid: str, unit: str) -> dict[str, Any] | None:
        headers = {**self.pf.headers(UserRole.DEPARTMENT, unit), "Cache-Control": "no-cache"}
        try:
            r = await self.pf.http.get(f"{self.stack.url('progress')}/v1/assignments/{aid}?source=read_model",
                                       headers=headers)  # fmt: skip
        except httpx.TransportError:
            return None
        if r.status_code != 200:
            return None
        data = r.json()
        return {k: data.get(k) for k in SHOWN}

    async def official(self, n: int) -> None:
        rng = random.Random(n)
        while self.running():
            try:
                aid = await asyncio.wait_for(self.waiting.get(), timeout=5)
            except TimeoutError:
                continue
            unit = unit_of(aid)
            before = None
            while before is None and self.running():  # the dispatch event reaches the read model first
                before = await self.shown_fresh(aid, unit)
                if before is None:
                    await asyncio.sleep(0.1)
            for step in SCRIPT:
                if not self.running():
                    return
                t0 = time.monotonic()
                r, attempts = await self.send("POST", "progress", f"/v1/assignments/{aid}/{step.path}", step.role,
                                              unit, step.body, key=uuid.uuid4().hex)  # fmt: skip
                command_ms = 1000 * (time.monotonic() - t0)
                if r.status_code >= 300:
                    self.refused.append(f"{step.name} {aid}: {r.status_code} {r.text[:200]}")
                    break
                self.events += r.json().get("event_ids", [])
                lag = await self.until_changed(aid, unit, before)
                self.samples.append(Sample(self.now(), step.name, command_ms, attempts,
                                           None if lag is None else 1000 * lag))  # fmt: skip
                before = await self.shown_fresh(aid, unit) or before
                if rng.random() < 0.2:
                    t1 = time.monotonic()
                    r, _ = await self.send("GET", "progress", "/v1/status?limit=50", UserRole.SUPERVISOR)
                    if r.status_code == 200:
                        self.reads.append(1000 * (time.monotonic() - t1))

    async def supervisor(self) -> None:
        """Dispatch a programme part whenever fewer assignments wait than there are officials."""
        while self.running():
            if self.waiting.qsize() < self.officials:
                await self.dispatch_part()
            await asyncio.sleep(1.0)

    async def dispatch_part(self) -> None:
        body = programme(unique("soak").removeprefix("soak-"), limit=PART, min_horizon=START_YEAR + 2)
        r, _ = await self.send("POST", "assignment", "/v1/programmes", UserRole.ADMIN,
                               body=body.model_dump(mode="json"))  # fmt: skip
        r.raise_for_status()
        while True:  # a dispatch cut short by a kill says "dispatch again" (503): do so
            r, _ = await self.send("POST", "assignment", f"/v1/programmes/{body.programme_id}/dispatch",
                                   UserRole.ADMIN)  # fmt: skip
            if r.status_code < 300:
                break
            if r.status_code not in TRANSIENT and r.status_code != 409:
                r.raise_for_status()
            await asyncio.sleep(1.0)
        self.parts += 1
        ids = [assignment_id(body.programme_id, x.task_no, x.unit_id) for x in body.division.responsibilities]
        random.shuffle(ids)
        for aid in ids:
            self.waiting.put_nowait(aid)

    async def killer(self, every: float, rng: random.Random) -> None:
        """SIGKILL a random policyflow process every `every` seconds; start it again at once."""
        while True:
            await asyncio.sleep(every)
            if not self.running():
                return
            name = rng.choice(ALL_PROCESSES)
            child = self.stack.children[name]
            t0 = time.monotonic()
            if child.proc is not None:
                child.proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(child.proc.wait)
            await self.stack.start(name)
            self.kills.append({"at_s": round(self.now(), 1), "process": name,
                               "back_after_s": round(time.monotonic() - t0, 2)})  # fmt: skip

    async def sample_memory(self) -> None:
        while self.running():
            pids = {n: c.pid for n, c in self.stack.children.items() if c.alive()}
            pids.update({s.name: s.proc.pid for s in self.stack.stack.servers if s.proc is not None})
            row: dict[str, Any] = {"at_s": round(self.now(), 1)}
            row.update({n: proc_memory(p).get("rss_mib") for n, p in pids.items()})
            self.memory.append(row)
            await asyncio.sleep(10.0)

    def minutes(self) -> list[dict[str, Any]]:
        out = []
        last = int(max((s.at for s in self.samples), default=0) // 60)
        for m in range(last + 1):
            rows = [s for s in self.samples if m * 60 <= s.at < (m + 1) * 60]
            cmd = sorted(s.command_ms for s in rows)
            lag = sorted(s.lag_ms for s in rows if s.lag_ms is not None)
            out.append({
                "minute": m + 1, "commands": len(rows), "retried": sum(1 for s in rows if s.attempts > 1),
                "command_p50_ms": round(percentile(cmd, 50), 1), "command_p99_ms": round(percentile(cmd, 99), 1),
                "lag_p50_ms": round(percentile(lag, 50), 1), "lag_p99_ms": round(percentile(lag, 99), 1),
                "lag_not_seen": sum(1 for s in rows if s.lag_ms is None),
                "kills": [k["process"] for k in self.kills if m * 60 <= k["at_s"] < (m + 1) * 60],
            })  # fmt: skip
        return out


async def run(ctx: Context) -> Result:
    minutes = float(ctx.options.get("minutes", 0.5 if ctx.smoke else 30.0))
    officials = int(ctx.options.get("officials", 10 if ctx.smoke else 50))
    kill_every = float(ctx.options.get("kill_every", 10.0 if ctx.smoke else 180.0))
    db = ctx.options.get("db", "postgres")
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    result.extra.update(minutes=minutes, officials=officials, kill_every_s=kill_every, db=db,
                        processes_killed_from=list(ALL_PROCESSES), script=[s.name for s in SCRIPT])  # fmt: skip
    if db == "postgres":
        result.extra["postgres"] = await pg.server_settings()
    stack = BenchStack(ctx.work_dir / "stack", db=db)
    try:
        with ctx.phase("servers and policyflow processes"):
            await stack.start_servers()
            await stack.start(*ALL_PROCESSES)
        async with httpx.AsyncClient(timeout=120.0, limits=httpx.Limits(max_connections=200)) as http:
            soak = Soak(stack, PfClient(stack, http), officials, ends_at=time.monotonic() + 1e9)
            with ctx.phase("first programme part"):
                await soak.dispatch_part()
            soak.started = time.monotonic()
            soak.ends_at = soak.started + 60 * minutes
            load_before = _loadavg()
            tasks = [asyncio.create_task(soak.killer(kill_every, random.Random(7)))]
            tasks += [asyncio.create_task(soak.sample_memory()), asyncio.create_task(soak.supervisor())]
            await asyncio.gather(*(soak.official(n) for n in range(officials)))
            for t in tasks:
                t.cancel()
            load_after = _loadavg()
            elapsed = time.monotonic() - soak.started
            with ctx.phase("settle and look every acknowledged event up in the ledger"):
                await stack.settle(timeout=600)
                check = await acknowledged_in_ledger(stack, soak.events)
        cmd = sorted(s.command_ms for s in soak.samples)
        lag = sorted(s.lag_ms for s in soak.samples if s.lag_ms is not None)
        result.policyflow_rate = len(soak.samples) / elapsed
        result.extra.update(
            commands=len(soak.samples), reads=len(soak.reads), refused=len(soak.refused),
            refused_examples=soak.refused[:5], retried=sum(1 for s in soak.samples if s.attempts > 1),
            programme_parts=soak.parts, retry_causes=dict(soak.retry_causes),
            acknowledged_events=len(soak.events), ledger=check,
            lost=check["missing"], command_p50_ms=round(percentile(cmd, 50), 1),
            command_p99_ms=round(percentile(cmd, 99), 1), lag_p50_ms=round(percentile(lag, 50), 1),
            lag_p99_ms=round(percentile(lag, 99), 1), lag_not_seen=sum(1 for s in soak.samples if s.lag_ms is None),
            read_p99_ms=round(percentile(sorted(soak.reads), 99), 1), kills=soak.kills,
            per_minute=soak.minutes(), memory_mib=soak.memory, memory_trend=memory_trend(soak.memory, soak.kills),
            load_average={"before": load_before, "after": load_after},
            summary=f"{len(soak.samples)} commands, lost {check['missing']}, {len(soak.kills)} kills, "
            f"command p99 {percentile(cmd, 99):.0f} ms, lag p99 {percentile(lag, 99):.0f} ms",
        )  # fmt: skip
        result.extra["median_minute_command_p99_ms"] = median([m["command_p99_ms"] for m in soak.minutes()])
        return result
    finally:
        await stack.close()


def _loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]
