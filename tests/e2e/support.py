"""Helpers for the service tests: a small programme, synthetic events, services under uvicorn."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import uvicorn
from fastapi import FastAPI
from nats.js.errors import NotFoundError

from contracts.access_log import ACCESS_STREAM
from contracts.api import ProgrammeImport
from contracts.base import SYSTEM_ACTOR, Actor, Role, UserRole
from contracts.catalog import (
    Division,
    Programme,
    Responsibility,
    Schedule,
    Task,
    TaskGroup,
    Unit,
    UnitKind,
)
from contracts.events import (
    AssignmentAccepted,
    AssignmentCreated,
    Deadline,
    Event,
    Fact,
    ProgressReported,
    SupervisionEscalated,
    make_event,
)
from contracts.ids import assignment_id
from contracts.subjects import EVENT_STREAM, EVENT_SUBJECTS
from deploy.local.servers import free_port
from services.shared.auth import issue_token
from services.shared.db import make_engine, sqlite_url
from services.shared.streams import ensure_event_stream
from tests.support.waiting import until

UNITS = [
    Unit(unit_id="jw", name="市住房城乡建委", kind=UnitKind.DEPARTMENT),
    Unit(unit_id="fgw", name="市发展改革委", kind=UnitKind.DEPARTMENT),
    Unit(unit_id="yuzhong", name="渝中区", kind=UnitKind.DISTRICT),
    Unit(unit_id="wanzhou", name="万州区", kind=UnitKind.DISTRICT),
]


def small_programme(programme_id: str | None = None, start_year: int = 2026, horizon: int = 2030) -> ProgrammeImport:
    """Three tasks in two groups, four units: lead, cooperating and district responsibilities."""
    pid = programme_id or f"t-{uuid.uuid4().hex[:10]}"
    groups = [
        TaskGroup(
            no=1,
            title="推动城乡建设一体化发展",
            tasks=[
                Task(no=1, title="促进区域和城市群绿色发展", text="促进区域和城市群绿色发展。"),
                Task(no=2, title="建设人与自然和谐共生的美丽城市", text="建设人与自然和谐共生的美丽城市。"),
            ],
        ),
        TaskGroup(
            no=2,
            title="转变城乡建设发展方式",
            tasks=[
                Task(no=3, title="建设高品质绿色建筑", text="建设高品质绿色建筑。"),
            ],
        ),
    ]
    resp = [
        Responsibility(task_no=1, unit_id="jw", role=Role.LEAD, horizon_year=horizon),
        Responsibility(task_no=1, unit_id="fgw", role=Role.COOPERATING, horizon_year=horizon),
        Responsibility(task_no=1, unit_id="yuzhong", role=Role.RESPONSIBLE, horizon_year=horizon),
        Responsibility(task_no=2, unit_id="yuzhong", role=Role.RESPONSIBLE, horizon_year=horizon),
        Responsibility(task_no=2, unit_id="wanzhou", role=Role.RESPONSIBLE, horizon_year=horizon),
        Responsibility(task_no=3, unit_id="jw", role=Role.LEAD, horizon_year=horizon),
        Responsibility(task_no=3, unit_id="yuzhong", role=Role.RESPONSIBLE, horizon_year=horizon),
    ]
    return ProgrammeImport(
        programme_id=pid,
        programme=Programme(document_no="测试〔2026〕1号", title="测试实施方案", groups=groups),
        units=UNITS,
        division=Division(example=True, note="test division", responsibilities=resp),
        schedule=Schedule(start_year=start_year, evaluation_years=[]),
    )


class EventFactory:
    """Synthetic events of one assignment, in sequence, as the workflow would publish them."""

    def __init__(self, programme_id: str, task_no: int, unit_id: str) -> None:
        self.programme_id, self.task_no, self.unit_id = programme_id, task_no, unit_id
        self.assignment_id = assignment_id(programme_id, task_no, unit_id)
        self.seq = 0
        self.at = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

    def next(self, fact: Fact, actor: Actor = SYSTEM_ACTOR) -> Event:
        event = make_event(
            fact,
            seq=self.seq,
            occurred_at=self.at + dt.timedelta(hours=self.seq),
            programme_id=self.programme_id,
            actor=actor,
            assignment_id=self.assignment_id,
            task_no=self.task_no,
            unit_id=self.unit_id,
        )
        self.seq += 1
        return event

    def created(self, year: int = 2026, role: Role = Role.RESPONSIBLE) -> Event:
        due = dt.date(year, 3, 16)
        return self.next(
            AssignmentCreated(
                task_title=f"task {self.task_no}",
                role=role,
                start_year=year,
                horizon_year=2030,
                opens=[Deadline(key="acceptance", kind="acceptance", due=due, year=year)],
            )
        )

    def accepted(self, year: int = 2026) -> Event:
        actor = Actor(sub=f"department:{self.unit_id}", role=UserRole.DEPARTMENT, unit_id=self.unit_id)
        return self.next(
            AssignmentAccepted(
                year=year,
                closes=["acceptance"],
                opens=[Deadline(key=f"annual_plan:{year}", kind="annual_plan", due=dt.date(year, 4, 1), year=year)],
            ),
            actor,
        )

    def escalated(self, level: str = "red", year: int = 2026) -> Event:
        d = Deadline(key=f"annual_plan:{year}", kind="annual_plan", due=dt.date(year, 4, 1), year=year)
        return self.next(SupervisionEscalated(deadline=d, level=level, working_days_overdue=25))

    def reported(self, percent: float, year: int = 2026) -> Event:
        return self.next(ProgressReported(year=year, period=f"{year}-Q1", percent=percent, narrative="done some"))


def lifecycle_events(programme_id: str, n_units: int = 3) -> list[Event]:
    """A few assignments with different fates, interleaved as a stream would carry them."""
    out: list[Event] = []
    for i in range(n_units):
        f = EventFactory(programme_id, 1 + i % 3, f"unit{i}")
        out += [f.created(), f.accepted()]
        if i % 3 == 1:
            out.append(f.escalated("yellow"))
        if i % 3 == 2:
            out.append(f.reported(40.0))
    return out


def token(key_dir: Path, role: str, unit_id: str | None = None, supervises: tuple[str, ...] = ()) -> str:
    return issue_token(key_dir, UserRole(role), unit_id, supervises=supervises)


def auth(key_dir: Path, role: str, unit_id: str | None = None, supervises: tuple[str, ...] = ()) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(key_dir, role, unit_id, supervises)}"}


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run an app under uvicorn on a free port in this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(600):
        if server.started:
            break
        if task.done():
            task.result()  # raises the start-up error
            raise RuntimeError("server exited during start-up")
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("server did not start within 30 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def get_json(client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any) -> Any:
    r = await client.get(url, headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


@dataclass
class Stack:
    assignment_url: str
    progress_url: str
    key_dir: Path
    js: Any
    temporal: Any
    task_queue: str
    tmp: Path
    # Database URL per service ("assignment", "progress"): SQLite files in tmp unless given.
    db_urls: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str, unit_id: str | None = None) -> dict[str, str]:
        return auth(self.key_dir, role, unit_id)

    async def account(self, role: str, unit_id: str | None = None, supervises: tuple[str, ...] = ()) -> tuple[str, str]:
        """A new account in the progress service's database: its name and first password."""
        from services.progress.accounts import add_user

        name = f"{role}-{unit_id or 'x'}-{uuid.uuid4().hex[:6]}"
        engine = make_engine(self.db_urls["progress"])
        try:
            return name, await add_user(engine, name, role, unit_id, supervises)
        finally:
            await engine.dispose()


async def fresh_event_stream(js: Any) -> None:
    """Each stack starts from an empty event stream and access stream, so positions, counts and the
    refusals its audit service ledgers are this test's own (the services remake the access stream)."""
    for stream in (EVENT_STREAM, ACCESS_STREAM):
        with suppress(NotFoundError):
            await js.delete_stream(stream)
    await ensure_event_stream(js)


@asynccontextmanager
async def running_stack(
    tmp: Path,
    nats_url: str,
    temporal: Any,
    temporal_address: str,
    task_queue: str,
    worker: bool = True,
    db_urls: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """Worker and both services in this process, over real HTTP, against the real servers.

    `db_urls` names each service's database (e.g. PostgreSQL); SQLite files in `tmp` otherwise.
    """
    from services.assignment.app import create_app as assignment_app
    from services.assignment.settings import AssignmentSettings
    from services.progress.app import create_app as progress_app
    from services.progress.settings import ProgressSettings
    from workflows.worker import build_worker

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await fresh_event_stream(js)
    common: dict[str, Any] = {
        "nats_url": nats_url,
        "temporal_address": temporal_address,
        "task_queue": task_queue,
        "key_dir": tmp / "keys",
        "var_dir": tmp,
    }
    urls = {name: sqlite_url(tmp / f"{name}.sqlite") for name in ("assignment", "progress")} | (db_urls or {})
    a_settings = AssignmentSettings(database_url=urls["assignment"], **common)
    try:
        async with AsyncExitStack() as stack:
            if worker:
                await stack.enter_async_context(build_worker(temporal, js, task_queue))
            a_url = await stack.enter_async_context(serve(assignment_app(a_settings)))
            p_settings = ProgressSettings(database_url=urls["progress"], assignment_url=a_url, **common)
            p_url = await stack.enter_async_context(serve(progress_app(p_settings)))
            try:
                yield Stack(a_url, p_url, tmp / "keys", js, temporal, task_queue, tmp, urls)
            finally:
                await end_calendars_of(temporal, task_queue)
    finally:
        await nc.close()


async def end_calendars_of(temporal: Any, task_queue: str) -> None:
    """Delete the working-calendar workflows this stack's worker ran. Their ids are one per year on the
    whole Temporal server (as in production), and a query of one, even closed, needs a worker on its
    task queue: left behind, it would keep every later stack's dispatch waiting for an answer."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
    from temporalio.service import RPCError

    from contracts.working_calendar import CALENDAR_WORKFLOW_NAME

    query = f'TaskQueue = "{task_queue}" AND WorkflowType = "{CALENDAR_WORKFLOW_NAME}"'
    for wid in sorted({w.id async for w in temporal.list_workflows(query)}):
        with suppress(RPCError):
            request = DeleteWorkflowExecutionRequest(
                namespace=temporal.namespace, workflow_execution=WorkflowExecution(workflow_id=wid)
            )
            await temporal.workflow_service.delete_workflow_execution(request)

            async def gone(wid: str = wid) -> bool:
                try:
                    await temporal.get_workflow_handle(wid).describe()
                except RPCError:
                    return True
                return False

            await until(gone, f"{wid} deleted")


async def stream_events(js: Any, assignment: str | None = None) -> list[Event]:
    """Every event in the stream (optionally of one assignment), read with an ordered consumer."""
    info = await js.stream_info(EVENT_STREAM)
    out: list[Event] = []
    if info.state.messages == 0:
        return out
    sub = await js.subscribe(EVENT_SUBJECTS, ordered_consumer=True)
    try:
        while True:
            msg = await sub.next_msg(timeout=5.0)
            event = Event.model_validate_json(msg.data)
            if assignment is None or event.assignment_id == assignment:
                out.append(event)
            if msg.metadata.sequence.stream >= info.state.last_seq:
                return out
    finally:
        await sub.unsubscribe()
