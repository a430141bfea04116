"""The supervisors' read model: one row per assignment, folded from the event stream only.

Built incrementally by the durable consumer (subscribers.py) and rebuilt from scratch by
`rebuild()`; both go through `projection.apply_batch`, so they agree row for row.
"""

from __future__ import annotations

import difflib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson
from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.base import OVERDUE_RANK, OverdueLevel, Role, Stage
from contracts.ids import parse_assignment_id
from contracts.subjects import EVENT_STREAM, EVENT_SUBJECTS, READ_MODEL_DURABLE
from services.progress.answers import AnswerCache
from services.progress.store import READ_MODEL, URGENCY, metadata
from services.shared import access, projection

A = READ_MODEL.assignments
MAX_CANDIDATES = 20_000  # ids compared with a mistyped one (the example programme has about 1,300)


@dataclass(frozen=True)
class StatusFilter:
    programme_id: str | None = None
    unit_id: str | None = None
    task_no: int | None = None
    stage: Stage | None = None
    overdue: str | None = None  # a level, or "any" for blue and above
    tasks_by_programme: dict[str, list[int]] | None = None  # a group, resolved to its tasks
    area: access.Area | None = None  # what the caller may list (None: everything)


def where(f: StatusFilter) -> list[Any]:
    """The filter's conditions on the read model's rows (also used by the dashboard's statistics)."""
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
        conds.append(A.c.overdue_rank > OVERDUE_RANK[OverdueLevel.NONE])
    elif f.overdue:
        conds.append(A.c.overdue_rank == OVERDUE_RANK[OverdueLevel(f.overdue)])
    if f.tasks_by_programme is not None:
        groups = [and_(A.c.programme_id == p, A.c.task_no.in_(t)) for p, t in f.tasks_by_programme.items() if t]
        conds.append(or_(*groups) if groups else false())
    if f.area is not None:
        conds.append(access.condition(f.area, A.c.programme_id, A.c.unit_id, A.c.task_no))
    return conds


# The columns of an AssignmentSummary, in its field order: a page never reads a row's `state`.
SUMMARY_COLUMNS = (
    A.c.assignment_id, A.c.programme_id, A.c.task_no, A.c.task_title, A.c.unit_id, A.c.role, A.c.stage,
    A.c.year, A.c.overdue_level, A.c.next_deadline, A.c.percent,
)  # fmt: skip
SUMMARY_FIELDS = tuple(str(c.name) for c in SUMMARY_COLUMNS)


async def status_rows(
    engine: AsyncEngine | AsyncConnection, f: StatusFilter, limit: int, offset: int
) -> tuple[list[Any], int]:
    """One page of summary rows, most urgent first, and the number of rows that match."""
    rows, total, _ = await positioned_rows(engine, f, limit, offset)
    return rows, total


async def positioned_rows(
    source: AsyncEngine | AsyncConnection, f: StatusFilter, limit: int, offset: int, consumer: str = READ_MODEL_DURABLE
) -> tuple[list[Any], int, int]:
    """`status_rows`, and the read model's position they were read at.

    One statement: the page in the order of store.URGENCY (which an index serves, so the
    database stops after the page instead of sorting every match) with the filter's total and
    the position as uncorrelated scalar subqueries beside each row, so all three come from one
    snapshot (a second statement only when the page is empty).
    """
    conds = where(f)
    count = select(func.count()).select_from(A).where(*conds).scalar_subquery()
    tracking = READ_MODEL.tracking
    at = func.coalesce(select(tracking.c.last_seq).where(tracking.c.consumer == consumer).scalar_subquery(), 0)
    page = (
        select(*SUMMARY_COLUMNS, count.label("total"), at.label("position"))
        .where(*conds)
        .order_by(*URGENCY)
        .limit(limit)
        .offset(offset)
    )
    async with _connection(source) as conn:
        rows = list((await conn.execute(page)).all())
        if rows:
            return rows, int(rows[0].total), int(rows[0].position)
        total, position = (await conn.execute(select(count, at))).one()
        return rows, int(total), int(position)


@asynccontextmanager
async def _connection(source: AsyncEngine | AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """The caller's connection, or one of the engine's for this read."""
    if isinstance(source, AsyncConnection):
        yield source
        return
    async with source.connect() as conn:
        yield conn


def page_json(rows: Sequence[Any], total: int) -> bytes:
    """The JSON of `Page[AssignmentSummary]` for these rows, written straight from the columns.

    Every column was written by the projection from a validated AssignmentState
    (`row_of`); `next_deadline` is already the JSON of its Deadline, so it is embedded as it is.
    """
    items = []
    for r in rows:
        item = dict(zip(SUMMARY_FIELDS, r, strict=False))  # a row ends with its total and position
        item["next_deadline"] = orjson.Fragment(r.next_deadline) if r.next_deadline else None
        items.append(item)
    return orjson.dumps({"items": items, "total": total})


class Answer(NamedTuple):
    body: bytes
    cache: Literal["hit", "miss", "bypass"] | None = None  # None: no answers kept (cache off)
    stored: bool = False  # kept for the next request


def _key(f: StatusFilter, limit: int, offset: int) -> Hashable:
    groups = None if f.tasks_by_programme is None else tuple((p, *t) for p, t in f.tasks_by_programme.items())
    return ("status", f.programme_id, f.unit_id, f.task_no, f.stage, f.overdue, groups, f.area, limit, offset)


class StatusReader:
    """The API's reads of the read model: status pages and single rows' state.

    With `cache_bytes`, answers are kept while the read model stays at the same stream position
    (answers.py): the projection moves the position in the transaction that changes the rows, and
    the rows are always the fold of the stream up to it, so an answer is a function of the position.
    """

    def __init__(self, engine: AsyncEngine, cache_bytes: int = 0, consumer: str = READ_MODEL_DURABLE) -> None:
        # On PostgreSQL each read runs outside a transaction: BEGIN and the pool's ROLLBACK on
        # return were two of a page's round trips, and no answer needs more than one statement's
        # snapshot (a page, its total and the position are one statement; another answer reads
        # the position before it).
        # SQLite's driver begins no transaction for a read, and switching it costs a thread hop.
        autocommit = engine.dialect.name == "postgresql"
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
        self.consumer = consumer
        self.cache = AnswerCache(cache_bytes) if cache_bytes > 0 else None

    async def page_json(self, f: StatusFilter, limit: int, offset: int, fresh: bool = False) -> Answer:
        """The page as the JSON of `Page[AssignmentSummary]`. Computed, it is one statement that also
        reads the position (positioned_rows), and kept under the position of its own snapshot."""
        key = _key(f, limit, offset)
        async with self.engine.connect() as conn:
            if self.cache is not None and not fresh:
                kept = self.cache.get(await projection.position(conn, READ_MODEL, self.consumer), key)
                if kept is not None:
                    return Answer(kept, "hit")
            rows, total, version = await positioned_rows(conn, f, limit, offset, self.consumer)
        return self._keep(version, key, page_json(rows, total), fresh)

    async def answer(
        self, key: Hashable, compute: Callable[[AsyncConnection], Awaitable[bytes]], fresh: bool = False
    ) -> Answer:
        """`compute(conn)`'s body, or the one kept for `key` if the position has not moved since
        (`fresh`: compute it anyway, and keep that).

        The position and the answer are read on one connection: one checkout per answer."""
        async with self.engine.connect() as conn:
            if self.cache is None:
                return Answer(await compute(conn))
            # Read before computing: the answer then reflects at least this position, never less.
            version = await projection.position(conn, READ_MODEL, self.consumer)
            kept = self.cache.get(version, key)
            if kept is not None and not fresh:
                return Answer(kept, "hit")
            body = await compute(conn)
        return self._keep(version, key, body, fresh)

    def _keep(self, version: int, key: Hashable, body: bytes, fresh: bool) -> Answer:
        """A computed answer, kept under `version` (the position it reflects at least)."""
        if self.cache is None:
            return Answer(body)
        kept = self.cache.get(version, key)  # called even when fresh: it follows the version
        stored = self.cache.put(version, key, body)
        # "bypass": there was an answer to give, but the request asked for a new one
        return Answer(body, "bypass" if fresh and kept is not None else "miss", stored)

    async def state(self, assignment_id: str, conn: AsyncConnection | None = None) -> str | None:
        """The row's AssignmentState JSON (the fold as of the read model's position), or None."""
        async with _connection(conn or self.engine) as c:
            q = select(A.c.state).where(A.c.assignment_id == assignment_id)
            return (await c.execute(q)).scalar_one_or_none()

    async def record(self, assignment_id: str) -> tuple[str, int, str] | None:
        """The assignment's programme, task and unit as its events say (never read from the id)."""
        async with self.engine.connect() as conn:
            q = select(A.c.programme_id, A.c.task_no, A.c.unit_id).where(A.c.assignment_id == assignment_id)
            row = (await conn.execute(q)).first()
        return (row[0], row[1], row[2]) if row else None

    async def exists(self, assignment_id: str) -> bool:
        async with self.engine.connect() as conn:
            q = select(A.c.assignment_id).where(A.c.assignment_id == assignment_id)
            return (await conn.execute(q)).first() is not None

    async def lead_units(self, programme_id: str, task_no: int) -> frozenset[str]:
        """The units leading a task now (a lead assignment not cancelled): they read all of it. By the
        record's unit and role, not the id: a reassigned lead's assignment has another id."""
        q = select(A.c.unit_id).where(
            A.c.programme_id == programme_id,
            A.c.task_no == task_no,
            A.c.role == Role.LEAD.value,
            A.c.stage != Stage.CANCELLED.value,
        )
        async with self.engine.connect() as conn:
            return frozenset(r[0] for r in await conn.execute(q))

    async def ids_like(self, assignment_id: str, area: access.Area | None = None, most: int = 3) -> list[str]:
        """The ids closest to one that names no assignment, drawn from those the caller may see
        (`area`) and, within them, of the same task or unit; all of them when it names neither."""
        parsed = parse_assignment_id(assignment_id)
        q = select(A.c.assignment_id)
        if area is not None:
            q = q.where(access.condition(area, A.c.programme_id, A.c.unit_id, A.c.task_no))
        few = area is not None and not area.everything and not area.tasks  # a unit's own ids: all are candidates
        if parsed is not None and not few:
            q = q.where(or_(A.c.task_no == parsed[1], A.c.unit_id == parsed[2]))
        async with self.engine.connect() as conn:
            ids = [r[0] for r in await conn.execute(q.limit(MAX_CANDIDATES))]
        return difflib.get_close_matches(assignment_id, ids, n=most, cutoff=0.6)

    def close(self) -> None:
        """Forget the answers kept (the engine is the caller's to dispose of)."""
        if self.cache is not None:
            self.cache.clear()


async def programme_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(A.c.programme_id).distinct())
        return sorted(r[0] for r in rows)


async def position(engine: AsyncEngine, consumer: str = READ_MODEL_DURABLE) -> int:
    async with engine.connect() as conn:
        return await projection.position(conn, READ_MODEL, consumer)


async def apply_messages(
    engine: AsyncEngine,
    messages: Sequence[tuple[int, bytes]],
    consumer: str = READ_MODEL_DURABLE,
    kept: projection.KeptStates | None = None,
) -> projection.BatchOutcome:
    return await projection.apply_batch(engine, READ_MODEL, consumer, messages, kept=kept)


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
    kept = projection.KeptStates()

    async def on_batch(items: list[tuple[int, bytes]], first: int) -> None:
        await projection.apply_batch(engine, READ_MODEL, consumer, items, first_available=first, kept=kept)

    return await projection.replay(js, stream, EVENT_SUBJECTS, on_batch, batch=batch, progress=progress)
