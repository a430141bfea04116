"""The assignment service's database: programmes, the unit registry, the division, the inbox projection."""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, Index, String, Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from contracts.api import ProgrammeImport
from contracts.catalog import Unit, UnitKind
from contracts.ids import assignment_id
from contracts.indicators import ProgrammeOutcomes
from contracts.programme_calendar import ProgrammeCalendar
from services.shared import access, migrate
from services.shared.projection_tables import projection_tables, table_of


class AssignmentModel(SQLModel, registry=registry()):
    """The assignment service's tables: `metadata` is what its alembic environment migrates."""


class Programme(AssignmentModel, table=True):
    __tablename__ = "programmes"

    programme_id: str = Field(primary_key=True, sa_type=String(64))
    content_sha256: str = Field(sa_type=String(64))
    body: str = Field(sa_type=Text)  # the ProgrammeImport as imported
    document_no: str = Field(sa_type=Text)
    title: str = Field(sa_type=Text)
    imported_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    imported_by: str = Field(sa_type=String(200))
    # The ProgrammeImported fact, kept so that a repeated import hands the programme workflow the
    # very same fact; `event_published`: that workflow was started (it publishes the event).
    event: str = Field(sa_type=Text)
    event_published: bool = False
    dispatched_at: dt.datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revision: int = 0  # the division's revision: 0 as imported, then one more per revision applied


class UnitRow(AssignmentModel, table=True):
    __tablename__ = "units"

    unit_id: str = Field(primary_key=True, sa_type=String(64))
    name: str = Field(sa_type=Text)
    kind: str = Field(sa_type=String(20))
    aliases: str = Field(default="[]", sa_type=Text)  # a JSON list


class Responsibility(AssignmentModel, table=True):
    __tablename__ = "responsibilities"
    __table_args__ = (Index("ix_resp_unit", "unit_id", "programme_id"),)

    assignment_id: str = Field(primary_key=True, sa_type=String(200))
    programme_id: str = Field(sa_type=String(64))
    task_no: int
    task_title: str = Field(sa_type=Text)
    unit_id: str = Field(sa_type=String(64))
    role: str = Field(sa_type=String(20))
    start_year: int
    horizon_year: int
    lead_assignment_id: str | None = Field(default=None, sa_type=String(200))
    # A closed responsibility (reassigned or removed) keeps its row, so that its id is never used again.
    closed_at: dt.datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    closed_reason: str | None = Field(default=None, sa_type=Text)
    successor_id: str | None = Field(default=None, sa_type=String(200))
    handover: str | None = Field(default=None, sa_type=Text)  # a reassignment's Handover (JSON): where it starts
    revision: int | None = None  # the revision that added it


class Revision(AssignmentModel, table=True):
    """A revision of a programme's division, as applied: the difference, and when its workflows followed."""

    __tablename__ = "revisions"

    programme_id: str = Field(primary_key=True, sa_type=String(64))
    revision: int = Field(primary_key=True)
    version: str = Field(sa_type=String(64))  # the dry run's version this revision was applied with
    diff: str = Field(sa_type=Text)  # JSON: the ProgrammeRevised fact and the cooperating units' new leads
    applied_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    applied_by: str = Field(sa_type=String(200))
    completed_at: dt.datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


metadata = AssignmentModel.metadata
programmes = table_of(Programme)
units = table_of(UnitRow)
responsibilities = table_of(Responsibility)
revisions = table_of(Revision)
# The inbox's stage, deadlines and overdue level, folded from the event stream.
INBOX = projection_tables(AssignmentModel, "inbox")


async def create_tables(engine: AsyncEngine) -> None:
    """The schema at head: alembic `upgrade head` (services/assignment/migrations), under the migration lock."""
    await migrate.upgrade(engine, "assignment")


def content_sha256(body: ProgrammeImport) -> str:
    content = body.model_dump(mode="json")
    if body.outcomes == ProgrammeOutcomes():  # no indicators.yaml: the hash programmes had before it existed
        del content["outcomes"]
    if body.calendar == ProgrammeCalendar():  # no calendar.yaml: the hash programmes had before it existed
        del content["calendar"]
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def responsibility_rows(body: ProgrammeImport) -> list[dict[str, Any]]:
    """One row per responsibility; cooperating units point at their task's lead assignment.

    A task with several lead units (按职责分工负责) consolidates at the first lead listed.
    """
    titles = {t.no: t.title for t in body.programme.tasks()}
    leads: dict[int, str] = {}
    for r in body.division.responsibilities:
        if r.role.value == "lead":
            leads.setdefault(r.task_no, assignment_id(body.programme_id, r.task_no, r.unit_id))
    return [
        {
            "assignment_id": assignment_id(body.programme_id, r.task_no, r.unit_id),
            "programme_id": body.programme_id,
            "task_no": r.task_no,
            "task_title": titles[r.task_no],
            "unit_id": r.unit_id,
            "role": r.role.value,
            "start_year": body.schedule.start_year,
            "horizon_year": r.horizon_year,
            "lead_assignment_id": leads.get(r.task_no) if r.role.value == "cooperating" else None,
        }
        for r in body.division.responsibilities
    ]


@dataclass(frozen=True)
class StoredProgramme:
    programme_id: str
    content_sha256: str
    body: ProgrammeImport
    event: str
    event_published: bool
    dispatched_at: dt.datetime | None


def _stored(row: Any) -> StoredProgramme:
    return StoredProgramme(
        programme_id=row.programme_id,
        content_sha256=row.content_sha256,
        body=ProgrammeImport.model_validate_json(row.body),
        event=row.event,
        event_published=bool(row.event_published),
        dispatched_at=row.dispatched_at,
    )


async def get_programme(engine: AsyncEngine, programme_id: str) -> StoredProgramme | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(programmes).where(programmes.c.programme_id == programme_id))).first()
    return _stored(row) if row else None


async def insert_programme(
    engine: AsyncEngine, body: ProgrammeImport, sha: str, fact_json: str, actor_sub: str
) -> StoredProgramme | None:
    """Store a new programme with its units and division; None if the id is already taken."""
    now = dt.datetime.now(dt.UTC)
    async with engine.begin() as conn:
        taken = (
            await conn.execute(select(programmes.c.programme_id).where(programmes.c.programme_id == body.programme_id))
        ).first()
        if taken:
            return None
        await conn.execute(
            programmes.insert().values(
                programme_id=body.programme_id,
                content_sha256=sha,
                body=body.model_dump_json(),
                document_no=body.programme.document_no,
                title=body.programme.title,
                imported_at=now,
                imported_by=actor_sub,
                event=fact_json,
                event_published=False,
            )
        )
        known = {r[0] for r in await conn.execute(select(units.c.unit_id))}
        for u in body.units:
            values = {"name": u.name, "kind": u.kind.value, "aliases": json.dumps(u.aliases, ensure_ascii=False)}
            if u.unit_id in known:
                await conn.execute(update(units).where(units.c.unit_id == u.unit_id).values(values))
            else:
                await conn.execute(units.insert().values(unit_id=u.unit_id, **values))
        rows = responsibility_rows(body)
        if rows:
            await conn.execute(responsibilities.insert(), rows)
    return StoredProgramme(body.programme_id, sha, body, fact_json, False, None)


async def mark_published(engine: AsyncEngine, programme_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(programmes).where(programmes.c.programme_id == programme_id).values(event_published=True)
        )


async def mark_dispatched(engine: AsyncEngine, programme_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(programmes)
            .where(programmes.c.programme_id == programme_id, programmes.c.dispatched_at.is_(None))
            .values(dispatched_at=dt.datetime.now(dt.UTC))
        )


async def programme_responsibilities(engine: AsyncEngine, programme_id: str) -> list[dict[str, Any]]:
    """The programme's responsibilities in force (closed ones, reassigned or removed, left out)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(responsibilities)
            .where(responsibilities.c.programme_id == programme_id, responsibilities.c.closed_at.is_(None))
            .order_by(responsibilities.c.task_no, responsibilities.c.unit_id)
        )
        return [dict(r._mapping) for r in rows]


async def list_units(
    engine: AsyncEngine, kind: UnitKind | None, limit: int, offset: int, programme_id: str | None = None
) -> tuple[list[Unit], int]:
    """The registry, or the units taking part in one programme (any responsibility in its division,
    in force or closed): units are organisations shared by programmes, each programme lists its own."""
    conds: list[Any] = [units.c.kind == kind.value] if kind else []
    if programme_id is not None:
        taking_part = select(responsibilities.c.unit_id).where(responsibilities.c.programme_id == programme_id)
        conds.append(units.c.unit_id.in_(taking_part))
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(units).where(*conds))).scalar_one()
        rows = await conn.execute(
            select(units).where(*conds).order_by(units.c.kind, units.c.unit_id).limit(limit).offset(offset)
        )
        items = [
            Unit(unit_id=r.unit_id, name=r.name, kind=UnitKind(r.kind), aliases=json.loads(r.aliases)) for r in rows
        ]
    return items, int(total)


async def unit_exists(engine: AsyncEngine, unit_id: str) -> bool:
    async with engine.connect() as conn:
        return (await conn.execute(select(units.c.unit_id).where(units.c.unit_id == unit_id))).first() is not None


async def inbox(
    engine: AsyncEngine, unit_id: str, stage: str | None, limit: int, offset: int, area: access.Area | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The unit's dispatched responsibilities, with stage and deadlines from the projection, within
    the caller's `area`.

    A responsibility whose first event has not arrived yet shows as assigned, in its first year.
    """
    r, a, p = responsibilities, INBOX.assignments, programmes
    joined = r.join(p, p.c.programme_id == r.c.programme_id).outerjoin(a, a.c.assignment_id == r.c.assignment_id)
    conds: list[Any] = [r.c.unit_id == unit_id, p.c.dispatched_at.is_not(None)]
    if area is not None:
        conds.append(access.condition(area, r.c.programme_id, r.c.unit_id, r.c.task_no))
    stage_col = func.coalesce(a.c.stage, "assigned")
    if stage:
        conds.append(stage_col == stage)
    rank = func.coalesce(a.c.overdue_rank, 0)
    query = (
        select(
            r.c.assignment_id,
            r.c.programme_id,
            r.c.task_no,
            r.c.task_title,
            r.c.unit_id,
            r.c.role,
            stage_col.label("stage"),
            func.coalesce(a.c.year, r.c.start_year).label("year"),
            func.coalesce(a.c.overdue_level, "none").label("overdue_level"),
            a.c.next_deadline,
            func.coalesce(a.c.percent, 0.0).label("percent"),
        )
        .select_from(joined)
        .where(*conds)
        .order_by(rank.desc(), a.c.next_deadline_due.is_(None), a.c.next_deadline_due, r.c.task_no, r.c.assignment_id)
        .limit(limit)
        .offset(offset)
    )
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(joined).where(*conds))).scalar_one()
        rows = [dict(x._mapping) for x in await conn.execute(query)]
    return rows, int(total)
