"""Helpers for the audit service tests: realistic events, a running service."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import uvicorn

from contracts import events as ev
from contracts.base import SYSTEM_ACTOR, Actor, OverdueLevel, Role, UserRole
from contracts.ids import assignment_id
from deploy.local.servers import free_port
from services.audit.app import create_app
from services.audit.settings import AuditSettings
from services.shared.auth import issue_token
from services.shared.db import sqlite_url
from tests.support import processes

PROGRAMME = "cq-2022-79"
T0 = dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)


def lifecycle(task_no: int, unit: str, start: dt.datetime = T0, step: dt.timedelta = WEEK) -> list[ev.Event]:
    """One assignment's realistic year: assigned, accepted, plan returned and resubmitted, approved,
    reminded, escalated, two quarterly reports with evidence, verified and completed."""
    aid = assignment_id(PROGRAMME, task_no, unit)
    dept = Actor(sub=f"department:{unit}", role=UserRole.DEPARTMENT, unit_id=unit)
    system = SYSTEM_ACTOR
    sup = Actor(sub="supervisor", role=UserRole.SUPERVISOR)
    ver = Actor(sub="verifier", role=UserRole.VERIFIER)
    plan_due = ev.Deadline(key="annual_plan:2026", kind="annual_plan", due=dt.date(2026, 2, 3), year=2026)
    milestones = [ev.Milestone(title="完成城市体检指标采集", due=dt.date(2026, 6, 30))]
    indicators = [ev.IndicatorTarget(name="绿色建筑占比", unit="%", target=70.0)]
    evidence = [ev.Evidence(name="验收报告.pdf", sha256="ab" * 32, size=123_456)]
    facts: list[tuple[ev.Fact, Actor]] = [
        (ev.AssignmentCreated(task_title="推进绿色建筑", role=Role.LEAD, start_year=2026, horizon_year=2026), system),
        (ev.AssignmentAccepted(year=2026, opens=[plan_due]), dept),
        (ev.AnnualPlanSubmitted(year=2026, revision=1, milestones=milestones, indicators=indicators), dept),
        (ev.AnnualPlanReturned(year=2026, revision=1, reasons="指标不具体 / targets too vague"), sup),
        (ev.ReminderIssued(deadline=plan_due), system),
        (ev.SupervisionEscalated(deadline=plan_due, level=OverdueLevel.BLUE, working_days_overdue=2), system),
        (ev.AnnualPlanSubmitted(year=2026, revision=2, milestones=milestones, indicators=indicators), dept),
        (ev.AnnualPlanApproved(year=2026, revision=2, closes=["annual_plan:2026"]), sup),
        (ev.EscalationCleared(deadline_key="annual_plan:2026"), system),
        (ev.ProgressReported(year=2026, period="2026-Q1", percent=30, narrative="开展调研", evidence=evidence), dept),
        (ev.ProgressReported(year=2026, period="2026-Q2", percent=65, narrative="完成过半"), dept),
        (ev.VerificationRequested(year=2026, reason="declared_done"), dept),
        (ev.VerificationPassed(year=2026, findings="符合要求"), ver),
        (ev.AssignmentCompleted(year=2026), system),
    ]
    return [
        ev.make_event(
            fact,
            seq=seq,
            occurred_at=start + step * seq,
            programme_id=PROGRAMME,
            actor=actor,
            assignment_id=aid,
            task_no=task_no,
            unit_id=unit,
        )
        for seq, (fact, actor) in enumerate(facts)
    ]


def many_events(n_assignments: int, first: int = 0) -> list[ev.Event]:
    """Lifecycles of many assignments, interleaved like concurrent workflows would publish them."""
    per = [lifecycle(1 + i % 30, f"unit{i:04d}") for i in range(first, first + n_assignments)]
    return [e for step in zip(*per, strict=True) for e in step]


async def publish_raw(nats_url: str, subject: str, data: bytes) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(subject, data)
    finally:
        await nc.close()


def settings_for(tmp: Path, nats_url: str, **overrides: object) -> AuditSettings:
    # The database is named explicitly, so a DATABASE_URL in the environment never leaks in.
    # No checkpoints on a timer unless a test asks: most count the checkpoints they make.
    values: dict[str, object] = {
        "database_url": sqlite_url(tmp / "audit.sqlite"),
        "checkpoint_interval": 0,
        **overrides,
    }
    return AuditSettings(var_dir=tmp, nats_url=nats_url, port=free_port(), **values)  # type: ignore[arg-type]


@dataclass
class Service:
    settings: AuditSettings
    client: httpx.AsyncClient

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def token(self, role: UserRole, unit_id: str | None = None) -> str:
        return issue_token(self.settings.keys, role, unit_id)

    def auth(self, role: UserRole = UserRole.AUDITOR, unit_id: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, unit_id)}"}

    async def wait_for_size(self, size: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            r = await self.client.get("/healthz")
            if r.status_code == 200:
                seen = r.json()["ledger_size"]
                if seen >= size:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"ledger size {seen}, expected {size}")


@asynccontextmanager
async def running(settings: AuditSettings) -> AsyncIterator[Service]:
    """The audit app under uvicorn in this event loop, on a free port."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=30) as client:
            yield Service(settings, client)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


def spawn(settings: AuditSettings, log: Path) -> subprocess.Popen[bytes]:
    """`python -m services.audit` as a child process (for kill -9)."""
    env = dict(os.environ)
    env.update(
        NATS_URL=settings.nats_url,
        POLICYFLOW_VAR=str(settings.var_dir),
        AUDIT_PORT=str(settings.port),
        AUDIT_HOST="127.0.0.1",
        AUDIT_DATABASE_URL=settings.database_url,
        AUDIT_CHECKPOINT_EVERY=str(settings.checkpoint_every),
        AUDIT_CHECKPOINT_INTERVAL=str(settings.checkpoint_interval),
        AUDIT_ORIGIN=settings.origin,
        WITNESS_URLS=settings.witness_urls,
        WITNESS_KEYS=settings.witness_keys,
        AUDIT_BATCH_SIZE=str(settings.batch_size),
    )
    env.pop("DATABASE_URL", None)
    return processes.spawn("services.audit", env, log)
