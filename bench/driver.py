"""Driving policyflow over HTTP as its users do: import, dispatch, accept, and a year's commands.

`year_script` is the sequence of commands one assignment goes through (the progress API's
plan, review, reports, verification request, verification); the raw lifecycle half sends
the very same bodies as Temporal updates.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.stack import BenchStack
from contracts.base import UserRole
from contracts.ids import parse_assignment_id

NARRATIVE = (
    "本季度按照年度计划推进绿色建筑和城市更新工作，完成既有建筑节能改造项目三个，"
    "新开工装配式建筑面积约十二万平方米，海绵城市建设累计达标面积持续增加。"
)
INDICATORS = [("新建绿色建筑占比", "%", 100.0), ("既有建筑节能改造面积", "万平方米", 50.0)]


@dataclass(frozen=True)
class Step:
    """One command: who sends it, where, with which body."""

    name: str
    role: UserRole
    path: str  # relative to /v1/assignments/{id}
    body: dict[str, Any]


def year_script(year: int, reports: int, evaluation: bool = False) -> list[Step]:
    """Plan, approval, `reports` quarterly reports, verification request, pass."""
    plan = {
        "year": year,
        "milestones": [{"title": f"第{q}季度完成阶段目标", "due": f"{year}-{3 * q:02d}-28"} for q in (1, 2, 3, 4)],
        "indicators": [{"name": n, "unit": u, "target": t} for n, u, t in INDICATORS],
    }
    steps = [
        Step("submit_plan", UserRole.DEPARTMENT, "plans", plan),
        Step("review_plan", UserRole.SUPERVISOR, f"plans/{year}/review", {"decision": "approve", "comment": "同意"}),
    ]
    for q in range(1, reports + 1):
        report = {
            "period": f"{year}-Q{min(q, 4)}",
            "percent": min(100.0, 25.0 * q),
            "narrative": NARRATIVE,
            "indicator_values": [{"name": n, "value": t * q / 4} for n, _, t in INDICATORS],
        }  # no evidence: a report names only files uploaded first, and the raw half has no upload to time
        steps.append(Step("report_progress", UserRole.DEPARTMENT, "reports", report))
    verdict: dict[str, Any] = {"decision": "pass", "findings": "年度目标完成"}
    if evaluation:
        verdict["score"] = 92.0
    steps += [
        Step("request_verification", UserRole.DEPARTMENT, "verification-requests", {"note": "申请核验"}),
        Step("verify", UserRole.VERIFIER, "verification", verdict),
    ]
    return steps


@dataclass
class PfClient:
    """HTTP calls to the assignment and progress services, with a token per role and unit."""

    stack: BenchStack
    http: httpx.AsyncClient
    tokens: dict[tuple[UserRole, str | None], dict[str, str]] = field(default_factory=dict)

    def headers(self, role: UserRole, unit_id: str | None = None) -> dict[str, str]:
        key = (role, unit_id if role == UserRole.DEPARTMENT else None)
        if key not in self.tokens:
            self.tokens[key] = self.stack.headers(*key)
        return self.tokens[key]

    async def call(self, method: str, service: str, path: str, role: UserRole, unit_id: str | None = None,
                   body: Any = None) -> dict[str, Any]:  # fmt: skip
        r = await self.http.request(
            method, f"{self.stack.url(service)}{path}", json=body, headers=self.headers(role, unit_id)
        )
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:400]}")
        return dict(r.json())

    async def import_programme(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", "assignment", "/v1/programmes", UserRole.ADMIN, body=body)

    async def dispatch(self, programme_id: str, retries: int = 0) -> tuple[float, dict[str, Any]]:
        """Time one dispatch; with `retries`, do what a 503 "dispatch again" asks, as a user would.

        After a retry, `started` counts what every attempt started (the last one's `skipped` are
        the earlier attempts' starts: a benchmark's programme is fresh) and `retried` says why.
        """
        started = time.perf_counter()
        path = f"/v1/programmes/{programme_id}/dispatch"
        retried: list[str] = []
        while True:
            try:
                out = await self.call("POST", "assignment", path, UserRole.ADMIN)
                break
            except RuntimeError as exc:
                if len(retried) >= retries or " 503 " not in str(exc) or "dispatch again" not in str(exc):
                    raise
                retried.append(str(exc)[:400])
                await asyncio.sleep(2.0)
        if retried:
            out.update(started=int(out["started"]) + int(out.get("skipped", 0)), retried=retried)
        return time.perf_counter() - started, out

    async def accept(self, assignment_id: str) -> dict[str, Any]:
        unit = unit_of(assignment_id)
        path = f"/v1/assignments/{assignment_id}/accept"
        return await self.call("POST", "progress", path, UserRole.DEPARTMENT, unit)

    async def step(self, assignment_id: str, step: Step) -> dict[str, Any]:
        path = f"/v1/assignments/{assignment_id}/{step.path}"
        return await self.call("POST", "progress", path, step.role, unit_of(assignment_id), step.body)


def unit_of(assignment_id: str) -> str:
    parsed = parse_assignment_id(assignment_id)
    if parsed is None:
        raise ValueError(f"not an assignment id: {assignment_id}")
    return parsed[2]
