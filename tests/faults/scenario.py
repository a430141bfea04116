"""A programme of many assignments driven over HTTP the way real clients drive it.

Every command carries an Idempotency-Key and is retried with the same key on a 5xx, a
timeout or a dropped connection until it succeeds or is refused with a 4xx and a reason;
each command's whole story (attempts, statuses, final answer, event ids) is recorded so the
invariants can be checked against the ledger afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from contracts.api import ProgrammeImport
from contracts.base import Role
from contracts.catalog import Division, Programme, Responsibility, Schedule, Task, TaskGroup, Unit, UnitKind
from contracts.ids import assignment_id
from tests.faults.harness import FaultStack
from tests.support.clock import china_today

RETRY_STATUSES = {500, 502, 503, 504}
COMMAND_DEADLINE = 300.0  # one command, all retries: generous, a noisy 2-core machine under faults


def programme(tasks: int, units: int, start_year: int, horizon: int, tag: str) -> ProgrammeImport:
    """`tasks` tasks x `units` district units, every unit responsible for every task."""
    pid = f"{tag}-{uuid.uuid4().hex[:8]}"
    unit_list = [Unit(unit_id=f"d{u:02d}", name=f"测试区{u:02d}", kind=UnitKind.DISTRICT) for u in range(units)]
    task_list = [Task(no=t, title=f"任务{t}", text=f"任务{t}。") for t in range(1, tasks + 1)]
    resp = [
        Responsibility(task_no=t.no, unit_id=u.unit_id, role=Role.RESPONSIBLE, horizon_year=horizon)
        for t in task_list
        for u in unit_list
    ]
    return ProgrammeImport(
        programme_id=pid,
        programme=Programme(
            document_no="故障〔2026〕1号",
            title="故障注入测试方案",
            groups=[TaskGroup(no=1, title="测试任务组", tasks=task_list)],
        ),
        units=unit_list,
        division=Division(example=True, note="fault-injection test division", responsibilities=resp),
        schedule=Schedule(start_year=start_year, evaluation_years=[]),
    )


@dataclass
class Command:
    """One logical command and everything its client saw."""

    assignment_id: str
    name: str
    key: str
    expect_ok: bool
    statuses: list[str] = field(default_factory=list)
    final: int | None = None
    detail: str = ""
    event_ids: list[str] = field(default_factory=list)
    replayed: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.final == 200

    @property
    def retried(self) -> bool:
        return len(self.statuses) > 1


class Driver:
    """Sends commands like a careful client: one Idempotency-Key per command, retried until answered."""

    def __init__(self, stack: FaultStack, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.http = http
        self.commands: list[Command] = []
        self._headers: dict[tuple[str, str | None], dict[str, str]] = {}

    def headers(self, role: str, unit: str | None = None) -> dict[str, str]:
        if (role, unit) not in self._headers:
            self._headers[(role, unit)] = self.stack.headers(role, unit)
        return self._headers[(role, unit)]

    async def send(
        self,
        aid: str,
        name: str,
        service: str,
        path: str,
        role: str,
        unit: str | None = None,
        body: Any = None,
        expect_ok: bool = True,
    ) -> Command:
        cmd = Command(aid, name, str(uuid.uuid4()), expect_ok)
        self.commands.append(cmd)
        url = f"{self.stack.url(service)}{path}"
        headers = {**self.headers(role, unit), "Idempotency-Key": cmd.key}
        t0 = time.monotonic()
        delay = 0.25
        while True:
            try:
                r = await self.http.post(url, json=body, headers=headers, timeout=45.0)
            except httpx.TransportError as exc:  # refused, reset, timed out: the answer is unknown
                cmd.statuses.append(type(exc).__name__)
            else:
                cmd.statuses.append(str(r.status_code))
                if r.status_code not in RETRY_STATUSES:
                    cmd.final = r.status_code
                    data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                    if r.status_code == 200:
                        cmd.event_ids = list(data["event_ids"])
                        cmd.replayed = bool(data.get("replayed"))
                    else:
                        cmd.detail = str(data.get("detail", r.text))[:300]
                    break
            if time.monotonic() - t0 > COMMAND_DEADLINE:
                cmd.detail = f"no answer after {COMMAND_DEADLINE:.0f}s: {cmd.statuses[-5:]}"
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        cmd.seconds = time.monotonic() - t0
        return cmd

    async def must(self, *args: Any, **kwargs: Any) -> Command:
        cmd = await self.send(*args, **kwargs)
        assert cmd.ok, f"{cmd.name} on {cmd.assignment_id} refused: {cmd.final} {cmd.detail} ({cmd.statuses})"
        return cmd

    # ---- set-up -----------------------------------------------------------------------------------

    async def import_and_dispatch(self, body: ProgrammeImport) -> list[str]:
        sup = self.headers("admin")  # programme import and dispatch are the operators'
        a = self.stack.url("assignment")
        for path, payload in (
            (f"{a}/v1/programmes", body.model_dump(mode="json")),
            (f"{a}/v1/programmes/{body.programme_id}/dispatch", None),
        ):
            for _ in range(60):
                try:
                    r = await self.http.post(path, json=payload, headers=sup, timeout=120.0)
                except httpx.TransportError:
                    await asyncio.sleep(1.0)
                    continue
                if r.status_code in RETRY_STATUSES:
                    await asyncio.sleep(1.0)
                    continue
                assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
                break
        return [assignment_id(body.programme_id, r.task_no, r.unit_id) for r in body.division.responsibilities]

    # ---- the journey of one assignment ------------------------------------------------------------

    async def journey(self, aid: str, index: int, first: int, last: int, reports: int = 2) -> None:
        """For each year `first`..`last`: plan (the first year's sometimes returned once), approve, report
        the year's last `reports` begun quarters, request verification (the first year's sometimes failed
        once), pass; passing moves the assignment into the next year (continue-as-new). Before all that:
        accept, and (every third) one command sent in the wrong stage, which must be refused with a reason."""
        unit = aid.rsplit(".", 1)[1]
        p = f"/v1/assignments/{aid}"
        today = china_today()
        await self.must(aid, "accept", "progress", f"{p}/accept", "department", unit)
        if index % 3 == 0:
            report = {"period": f"{first}-Q1", "percent": 5, "narrative": "too early"}
            await self.send(
                aid, "report (wrong stage)", "progress", f"{p}/reports", "department", unit, report, expect_ok=False
            )
        for year in range(first, last + 1):
            plan = {
                "year": year,
                "milestones": [{"title": f"里程碑 {year}", "due": f"{year}-12-15"}],
                "indicators": [{"name": "绿色建筑占比", "unit": "%", "target": 70}],
            }
            await self.must(aid, "submit_plan", "progress", f"{p}/plans", "department", unit, plan)
            if index % 5 == 0 and year == first:
                back = {"decision": "return", "comment": "补充指标口径"}
                await self.must(
                    aid, "review_plan (return)", "progress", f"{p}/plans/{year}/review", "supervisor", body=back
                )
                await self.must(aid, "submit_plan (again)", "progress", f"{p}/plans", "department", unit, plan)
            approve = {"decision": "approve", "comment": "同意"}
            await self.must(aid, "review_plan", "progress", f"{p}/plans/{year}/review", "supervisor", body=approve)
            quarters = [q for q in (1, 2, 3, 4) if dt.date(year, 3 * q - 2, 1) <= today][-reports:]
            for q in quarters:
                report = {
                    "period": f"{year}-Q{q}",
                    "percent": 20 * q + index % 7,
                    "narrative": f"第{q}季度进展",
                    "indicator_values": [{"name": "绿色建筑占比", "value": 50 + q}],
                }
                await self.must(aid, "report_progress", "progress", f"{p}/reports", "department", unit, report)
            await self.must(
                aid,
                "request_verification",
                "progress",
                f"{p}/verification-requests",
                "department",
                unit,
                {"note": "已完成"},
            )
            if index % 5 == 1 and year == first:
                fail = {"decision": "fail", "findings": "佐证材料不足"}
                await self.must(aid, "verify (fail)", "progress", f"{p}/verification", "verifier", body=fail)
                await self.must(
                    aid,
                    "request_verification (again)",
                    "progress",
                    f"{p}/verification-requests",
                    "department",
                    unit,
                    {"note": "已整改"},
                )
            await self.must(
                aid,
                "verify",
                "progress",
                f"{p}/verification",
                "verifier",
                body={"decision": "pass", "findings": "通过"},
            )

    async def reporting(self, aid: str, index: int, year: int, reports: int = 3) -> None:
        """Accept, plan, approve, then `reports` progress reports with rising percent (the storm's subject)."""
        unit = aid.rsplit(".", 1)[1]
        p = f"/v1/assignments/{aid}"
        await self.must(aid, "accept", "progress", f"{p}/accept", "department", unit)
        plan = {"year": year, "milestones": [{"title": "里程碑", "due": f"{year}-12-15"}], "indicators": []}
        await self.must(aid, "submit_plan", "progress", f"{p}/plans", "department", unit, plan)
        await self.must(
            aid,
            "review_plan",
            "progress",
            f"{p}/plans/{year}/review",
            "supervisor",
            body={"decision": "approve", "comment": "同意"},
        )
        quarter = (china_today().month - 1) // 3 + 1
        for i in range(reports):
            body = {"period": f"{year}-Q{quarter}", "percent": 10 * (i + 1) + index, "narrative": f"第{i + 1}次填报"}
            await self.must(aid, "report_progress", "progress", f"{p}/reports", "department", unit, body)

    async def run(
        self,
        aids: list[str],
        first: int,
        last: int,
        concurrency: int = 15,
        reporting_only: bool = False,
        reports: int = 2,
    ) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int, aid: str) -> None:
            async with gate:
                if reporting_only:
                    await self.reporting(aid, i, first)
                else:
                    await self.journey(aid, i, first, last, reports)

        await asyncio.gather(*(one(i, aid) for i, aid in enumerate(aids)))

    # ---- figures ------------------------------------------------------------------------------------

    def figures(self) -> dict[str, object]:
        statuses = Counter(s for c in self.commands for s in c.statuses)
        return {
            "commands sent": len(self.commands),
            "HTTP attempts": sum(len(c.statuses) for c in self.commands),
            "commands retried (same Idempotency-Key)": sum(c.retried for c in self.commands),
            "answers replayed from an earlier attempt": sum(c.replayed for c in self.commands),
            "took effect (200)": sum(c.ok for c in self.commands),
            "refused with a reason (4xx)": sum(c.final is not None and 400 <= c.final < 500 for c in self.commands),
            "never answered": sum(c.final is None for c in self.commands),
            "slowest command (s)": round(max((c.seconds for c in self.commands), default=0.0), 1),
            "answers seen": dict(sorted(statuses.items())),
        }
