"""Two programmes side by side, seen through the four services' FastAPI apps in process: real SQLite
databases (the progress read model and the audit ledger folded from the same synthetic events, the
assignment service's programmes and division), a stand-in Temporal client that records what it is
sent, and tokens for every kind of caller. The lifespans (Temporal, NATS) are not run: the state
they would set is set here."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, _IncludedRouter
from starlette.routing import BaseRoute
from temporalio.service import RPCError, RPCStatusCode

from contracts.api import ProgrammeImport
from contracts.base import SYSTEM_ACTOR, Role, UserRole
from contracts.commands import CommandResult
from contracts.events import Event, ProgrammeImported, make_event
from services.assignment import store as assignment_store
from services.assignment.app import create_app as assignment_app
from services.assignment.dispatch import DispatchJobs
from services.assignment.settings import AssignmentSettings
from services.audit.api import Audit
from services.audit.app import create_app as audit_app
from services.audit.checkpoints import Checkpointer, Signer
from services.audit.ingest import Ingestor
from services.audit.store import create_tables as audit_tables
from services.notify import store as notify_store
from services.notify.app import create_app as notify_app
from services.notify.settings import NotifySettings
from services.progress import readmodel
from services.progress import store as progress_store
from services.progress.app import create_app as progress_app
from services.progress.blobs import blob_store
from services.progress.settings import ProgressSettings
from services.shared.auth import issue_token, load_public_key
from services.shared.consumer import Message
from services.shared.db import make_engine, sqlite_url
from tests.e2e.support import EventFactory, small_programme

P1, P2 = "authz-one", "authz-two"
TARGET = f"{P1}.t01.yuzhong"  # task 1 of P1: jw leads, fgw cooperates, yuzhong delivers

# Every kind of caller of the authorisation table: role, unit, supervised area.
CALLERS: dict[str, tuple[str, str | None, tuple[str, ...]] | None] = {
    "own": ("department", "yuzhong", ()),  # the target's unit
    "other": ("department", "wanzhou", ()),  # a unit with no part in task 1
    "lead": ("department", "jw", ()),  # the task's lead unit
    "coop": ("department", "fgw", ()),  # a cooperating unit of the task
    "district_in": ("supervisor", None, ("unit:yuzhong",)),  # 渝中区督查室
    "district_out": ("supervisor", None, ("unit:wanzhou",)),  # 万州区督查室
    "task_sup": ("supervisor", "jw", (f"task:{P1}/1",)),  # the lead department's supervisor of its task
    "city": ("supervisor", None, ()),
    "verifier": ("verifier", None, ()),
    "auditor": ("auditor", None, ()),
    "admin": ("admin", None, ()),
    "anon": None,
}


def programme(programme_id: str) -> ProgrammeImport:
    """`small_programme`; the second programme without wanzhou: programmes list their own units."""
    body = small_programme(programme_id)
    if programme_id == P1:
        return body
    lines = [r for r in body.division.responsibilities if r.unit_id != "wanzhou"]
    return body.model_copy(update={"division": body.division.model_copy(update={"responsibilities": lines})})


def events(programme_id: str) -> list[Event]:
    """The programme's import, then its division (`small_programme`): each responsibility created (a
    lead as lead), all but the cooperating ones accepted."""
    imported = ProgrammeImported(document_no="测试〔2026〕1号", title="测试实施方案", task_count=3,
                                 responsibility_count=7, content_sha256="0" * 64)  # fmt: skip
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    out: list[Event] = [make_event(imported, seq=0, occurred_at=at, programme_id=programme_id, actor=SYSTEM_ACTOR)]
    for r in programme(programme_id).division.responsibilities:
        f = EventFactory(programme_id, r.task_no, r.unit_id)
        out.append(f.created(role=r.role))
        if r.role != Role.COOPERATING:
            out.append(f.accepted())
    return out


class FakeHandle:
    def __init__(self, client: FakeTemporal, wid: str) -> None:
        self.client, self.wid = client, wid

    async def execute_update(self, name: str, cmd: Any, **_: Any) -> CommandResult:
        self.client.sent.append((self.wid, name, cmd))
        return CommandResult(event_ids=[f"{self.wid}#{len(self.client.sent):06d}"], stage="planning", year=2026)

    async def query(self, *_: Any, **__: Any) -> Any:
        raise RPCError(f"workflow not found for ID: {self.wid}", RPCStatusCode.NOT_FOUND, b"")

    async def describe(self) -> Any:
        raise RPCError(f"workflow not found for ID: {self.wid}", RPCStatusCode.NOT_FOUND, b"")


@dataclass
class FakeTemporal:
    """Records the updates it is sent; knows no workflow (every read comes from the read models)."""

    sent: list[tuple[str, str, Any]] = field(default_factory=list)

    def get_workflow_handle(self, wid: str, **_: Any) -> FakeHandle:
        return FakeHandle(self, wid)

    def get_schedule_handle(self, sid: str) -> FakeHandle:
        return FakeHandle(self, sid)  # no schedule exists: describe() answers not found


@dataclass
class World:
    keys: Path
    temporal: FakeTemporal
    clients: dict[str, httpx.AsyncClient]
    apps: dict[str, FastAPI]
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def headers(self, caller: str) -> dict[str, str]:
        return self.tokens[caller]


def headers_for(keys: Path, caller: str, programmes: tuple[str, ...] = ()) -> dict[str, str]:
    spec = CALLERS[caller]
    if spec is None:
        return {}
    role, unit, area = spec
    token = issue_token(keys, UserRole(role), unit, sub=f"{caller}-sub", supervises=area, programmes=programmes)
    return {"Authorization": f"Bearer {token}"}


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every route of an app, inside its included routers too."""

    def walk(routes: list[BaseRoute]) -> list[APIRoute]:
        found: list[APIRoute] = []
        for r in routes:
            if isinstance(r, _IncludedRouter):
                found += walk(r.original_router.routes)
            elif isinstance(r, APIRoute):
                found.append(r)
        return found

    return walk(app.router.routes)


async def build(tmp: Path) -> AsyncIterator[World]:
    keys = tmp / "keys"
    load_public_key(keys)  # makes the key pair
    temporal = FakeTemporal()
    all_events = events(P1) + events(P2)
    messages = [Message(i + 1, f"pf.events.{e.type}", e.model_dump_json().encode()) for i, e in enumerate(all_events)]

    p_settings = ProgressSettings(var_dir=tmp, key_dir=keys, assignment_url="http://127.0.0.1:9")
    p_engine = make_engine(p_settings.db_url())
    await progress_store.create_tables(p_engine)
    await readmodel.apply_messages(p_engine, [(m.stream_seq, m.data) for m in messages])
    progress = progress_app(p_settings)
    reader = readmodel.StatusReader(p_engine)
    progress.state.__dict__.update(
        settings=p_settings, public_key=load_public_key(keys), engine=p_engine, status_reader=reader,
        temporal=temporal, reminder_jobs={}, read_model_runner=SimpleNamespace(trouble=None),
        blobs=blob_store(p_settings.evidence_path(), None, None, "evidence/"),
    )  # fmt: skip

    a_settings = AssignmentSettings(var_dir=tmp, key_dir=keys)
    a_engine = make_engine(a_settings.db_url())
    await assignment_store.create_tables(a_engine)
    for pid in (P1, P2):
        body = programme(pid)
        fact = ProgrammeImported(document_no="d", title="t", task_count=3, responsibility_count=7, content_sha256="0")
        await assignment_store.insert_programme(
            a_engine, body, assignment_store.content_sha256(body), fact.model_dump_json(), "admin"
        )
        await assignment_store.mark_dispatched(a_engine, pid)
    assignment = assignment_app(a_settings)
    assignment.state.__dict__.update(
        settings=a_settings, public_key=load_public_key(keys), engine=a_engine, temporal=temporal,
        dispatch_jobs=DispatchJobs(),
    )  # fmt: skip

    au_engine = make_engine(sqlite_url(tmp / "audit.sqlite"))
    await audit_tables(au_engine)
    await Ingestor(au_engine, "audit-ledger").apply(messages)
    checkpointer = Checkpointer(au_engine, Signer(keys / "audit"), every=10_000)
    await checkpointer.checkpoint()
    audit = audit_app()
    consumer = SimpleNamespace(state="running", runner=None)
    audit.state.__dict__.update(
        public_key=load_public_key(keys),
        audit=Audit(au_engine, checkpointer, consumer),  # type: ignore[arg-type]
    )

    n_settings = NotifySettings(var_dir=tmp, key_dir=keys)
    n_engine = make_engine(n_settings.db_url())
    await notify_store.create_tables(n_engine)
    notify = notify_app(n_settings)
    notify.state.__dict__.update(
        settings=n_settings, public_key=load_public_key(keys), engine=n_engine,
        clock=lambda: dt.datetime(2026, 5, 6, 2, 0, tzinfo=dt.UTC), sender=SimpleNamespace(sent=0, wake=lambda: None),
        lease=SimpleNamespace(held=False),
    )  # fmt: skip

    apps = {"progress": progress, "assignment": assignment, "audit": audit, "notify": notify}
    async with httpx.AsyncClient(timeout=5.0) as progress.state.http:
        clients = {
            name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
            for name, app in apps.items()
        }
        world = World(keys, temporal, clients, apps)
        world.tokens = {caller: headers_for(keys, caller) for caller in CALLERS}
        try:
            yield world
        finally:
            for c in clients.values():
                await c.aclose()
            reader.close()
            for engine in (p_engine, a_engine, au_engine, n_engine):
                await engine.dispose()
