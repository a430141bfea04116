"""The supervisors' read model: one row per assignment, folded from the event stream only.

Built incrementally by the durable consumer (subscribers.py) and rebuilt from scratch by
`rebuild()`; both go through `projection.apply_batch`, so they agree row for row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.api import AssignmentSummary
from contracts.base import OVERDUE_RANK, OverdueLevel, Stage
from contracts.events import Deadline
from contracts.subjects import EVENT_STREAM, EVENT_SUBJECTS, READ_MODEL_DURABLE
from services.progress.store import READ_MODEL, metadata
from services.shared import projection

A = READ_MODEL.assignments


@dataclass(frozen=True)
class StatusFilter:
    programme_id: str | None = None
    unit_id: str | None = None
    task_no: int | None = None
    stage: Stage | None = None
    overdue: str | None = None  # a level, or "any" for blue and above
    tasks_by_programme: dict[str, list[int]] | None = None  # a group, resolved to its tasks


def where(f: StatusFilter) -> list[Any]:
    conds: list[Any] = []
    if f.programme_id:
        conds.append(A.c.programme_id == f.programme_id)
    if f.unit_id:
        conds.append(A.c.unit_id == f.unit_id)
    if f.task_no is not None:
        conds.append(A.c.task_no == f.task_no)
    if f.stage is not None:
        conds.append(A.c.stage == f.stage.value)
    if f.overdue == "any":
        conds.append(A.c.overdue_rank > 0)
    elif f.overdue:
        conds.append(A.c.overdue_rank == OVERDUE_RANK[OverdueLevel(f.overdue)])
    if f.tasks_by_programme is not None:
        groups = [and_(A.c.programme_id == p, A.c.task_no.in_(t)) for p, t in f.tasks_by_programme.items() if t]
        conds.append(or_(*groups) if groups else A.c.assignment_id.is_(None))
    return conds


def summary(row: Any) -> AssignmentSummary:
    return AssignmentSummary(
        assignment_id=row.assignment_id,
        programme_id=row.programme_id,
        task_no=row.task_no,
        task_title=row.task_title,
        unit_id=row.unit_id,
        role=row.role,
        stage=row.stage,
        year=row.year,
        overdue_level=row.overdue_level,
        next_deadline=Deadline.model_validate_json(row.next_deadline) if row.next_deadline else None,
        percent=row.percent,
    )


async def status(engine: AsyncEngine, f: StatusFilter, limit: int, offset: int) -> tuple[list[AssignmentSummary], int]:
    """Most urgent first: highest overdue level, then the nearest deadline."""
    conds = where(f)
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(A).where(*conds))).scalar_one()
        rows = await conn.execute(
            select(A)
            .where(*conds)
            .order_by(A.c.overdue_rank.desc(), A.c.next_deadline_due.is_(None), A.c.next_deadline_due,
                      A.c.assignment_id)
            .limit(limit)
            .offset(offset)
        )
        return [summary(r) for r in rows], int(total)


async def programme_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(A.c.programme_id).distinct())
        return sorted(r[0] for r in rows)


async def position(engine: AsyncEngine, consumer: str = READ_MODEL_DURABLE) -> int:
    async with engine.connect() as conn:
        return await projection.position(conn, READ_MODEL, consumer)


async def apply_messages(
    engine: AsyncEngine, messages: Sequence[tuple[int, bytes]], consumer: str = READ_MODEL_DURABLE
) -> projection.BatchOutcome:
    return await projection.apply_batch(engine, READ_MODEL, consumer, messages)


async def snapshot(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every row, ordered: what 'rebuilt equals incremental' compares."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(A).order_by(A.c.assignment_id))
        return [dict(r._mapping) for r in rows]


async def rebuild(
    engine: AsyncEngine,
    js: Any,
    stream: str = EVENT_STREAM,
    consumer: str = READ_MODEL_DURABLE,
    batch: int = 1000,
    progress: projection.Progress | None = None,
) -> int:
    """Drop the read model and fold the whole stream again; returns the number of messages read.

    The position is stored with each batch, so the live consumer (if running) skips what the
    rebuild already applied and holds back what it has not reached yet.
    """
    await projection.reset(engine, metadata, READ_MODEL)

    async def on_batch(items: list[tuple[int, bytes]], first: int) -> None:
        await projection.apply_batch(engine, READ_MODEL, consumer, items, first_available=first)

    return await projection.replay(js, stream, EVENT_SUBJECTS, on_batch, batch=batch, progress=progress)
