"""The progress service's database: the read model tables, the task-group cache and the evidence files."""

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.shared import migrate
from services.shared.projection_tables import projection_tables, table_of


class ProgressModel(SQLModel, registry=registry()):
    """The progress service's tables: `metadata` is what its alembic environment migrates."""


metadata = ProgressModel.metadata
# Event-sourced: dropped and rebuilt from the stream by readmodel.rebuild().
READ_MODEL = projection_tables(ProgressModel, "rm", outcomes=True, calendar=True)
_A = READ_MODEL.assignments
# The supervisors' order, most urgent first: highest escalation level, then the nearest deadline
# (none last), then the id. /v1/status sorts by exactly these expressions so that SQLite and
# PostgreSQL walk an index in that order and stop after one page, instead of sorting every
# matching row per request (a cost that grew with the read model: 9.9 ms -> 34 ms first page at
# 1.3k -> 14k rows). The others serve the stage filter, whose matches can be most rows, and the
# task filter across programmes (ix_rm_task leads with the programme): 0.49 -> 0.18 ms a page.
URGENCY = (_A.c.overdue_rank.desc(), _A.c.next_deadline_due.is_(None), _A.c.next_deadline_due, _A.c.assignment_id)
Index("ix_rm_urgency", *URGENCY)
Index("ix_rm_stage_urgency", _A.c.stage, *URGENCY)
Index("ix_rm_task_urgency", _A.c.task_no, *URGENCY)


class TaskGroup(ProgressModel, table=True):
    """Not event-sourced: a cache of each programme's task -> group table, fetched from the
    assignment service (the events carry the task number but not its group)."""

    __tablename__ = "task_groups"

    programme_id: str = Field(primary_key=True, sa_type=String(64))
    task_no: int = Field(primary_key=True)
    group_no: int
    group_title: str = Field(sa_type=Text)
    task_title: str = Field(sa_type=Text)


task_groups = table_of(TaskGroup)


class EvidenceFile(ProgressModel, table=True):
    """Not event-sourced: a file uploaded as evidence for an assignment. The content is kept once by
    its hash (services/progress/blobs.py); a report may name only files recorded here for it."""

    __tablename__ = "evidence_files"

    assignment_id: str = Field(primary_key=True, sa_type=String(200))
    sha256: str = Field(primary_key=True, sa_type=String(64))
    name: str = Field(sa_type=Text)
    media_type: str = Field(sa_type=String(100))
    size: int = Field(sa_type=BigInteger)
    uploaded_by: str = Field(sa_type=String(200))
    uploaded_at: dt.datetime = Field(sa_type=DateTime(timezone=True))


evidence_files = table_of(EvidenceFile)


class User(ProgressModel, table=True):
    """Not event-sourced: an account of the embedded default (services/progress/accounts.py).
    `supervises` is a JSON list of `unit:UNIT` and `task:PROGRAMME/N`, `programmes` one of programme
    ids the person is limited to (empty: all)."""

    __tablename__ = "users"

    name: str = Field(primary_key=True, sa_type=String(100))
    role: str = Field(sa_type=String(20))
    unit_id: str | None = Field(default=None, sa_type=String(64))
    supervises: str = Field(default="[]", sa_type=Text)
    programmes: str = Field(default="[]", sa_type=Text)
    password_hash: str = Field(sa_type=Text)
    disabled: bool = Field(default=False, sa_type=Boolean)
    created_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    password_set_at: dt.datetime = Field(sa_type=DateTime(timezone=True))


users = table_of(User)


class SignInFailure(ProgressModel, table=True):
    """Failed password sign-ins in a row per user name, whether or not the name exists (so that a
    lock-out says nothing about which names are accounts)."""

    __tablename__ = "sign_in_failures"

    name: str = Field(primary_key=True, sa_type=String(100))
    failures: int = Field(default=0, sa_type=Integer)
    locked_until: dt.datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


sign_in_failures = table_of(SignInFailure)


class WebSession(ProgressModel, table=True):
    """A signed-in person on the pages: the cookie holds a random id, this row its SHA-256 (a copy
    of the table opens no session). A provider sign-in keeps the provider's access token, which the
    pages send on to the other services."""

    __tablename__ = "sessions"

    id_hash: str = Field(primary_key=True, sa_type=String(64))
    user_name: str = Field(index=True, sa_type=String(200))
    role: str = Field(sa_type=String(20))
    unit_id: str | None = Field(default=None, sa_type=String(64))
    supervises: str = Field(default="[]", sa_type=Text)
    programmes: str = Field(default="[]", sa_type=Text)
    csrf: str = Field(sa_type=String(64))
    created_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    expires_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    access_token: str | None = Field(default=None, sa_type=Text)


sessions = table_of(WebSession)


async def create_tables(engine: AsyncEngine) -> None:
    """The schema at head: alembic `upgrade head` (services/progress/migrations), under the migration lock."""
    await migrate.upgrade(engine, "progress")


async def known_group_programmes(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(task_groups.c.programme_id).distinct())
        return {r[0] for r in rows}


async def store_task_groups(engine: AsyncEngine, programme_id: str, rows: list[dict[str, object]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(task_groups).where(task_groups.c.programme_id == programme_id))
        if rows:
            await conn.execute(task_groups.insert(), [{**r, "programme_id": programme_id} for r in rows])


async def tasks_in_group(engine: AsyncEngine, group_no: int) -> dict[str, list[int]]:
    """programme id -> task numbers in that group."""
    out: dict[str, list[int]] = {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(task_groups.c.programme_id, task_groups.c.task_no).where(task_groups.c.group_no == group_no)
        )
        for pid, task_no in rows:
            out.setdefault(pid, []).append(int(task_no))
    return out
