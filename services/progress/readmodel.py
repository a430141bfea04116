"""The supervisors' read model: one row per assignment, folded from the event stream only.

Built incrementally by the durable consumer (subscribers.py) and rebuilt from scratch by
`rebuild()`; both go through `projection.apply_batch`, so they agree row for row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson
from sqlalchemy import and_, bindparam, func, literal_column, or_, select
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.api import AssignmentSummary
from contracts.base import OVERDUE_RANK, OverdueLevel, Stage
from contracts.events import Deadline
from contracts.subjects import EVENT_STREAM, EVENT_SUBJECTS, READ_MODEL_DURABLE
from services.progress.answers import AnswerCache
from services.progress.store import READ_MODEL, URGENCY, metadata
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


@dataclass(frozen=True)
class _Term:
    """One condition of a filter: its values by bind name, and how to build it from them
    (from the values themselves, or from bind parameters to compile once and reuse)."""

    name: str
    values: dict[str, Any]
    build: Callable[[Mapping[str, Any]], Any]


def _terms(f: StatusFilter) -> list[_Term]:
    terms: list[_Term] = []
    if f.programme_id:
        pid = {"programme_id": f.programme_id}
        terms.append(_Term("programme", pid, lambda v: A.c.programme_id == v["programme_id"]))
    if f.unit_id:
        terms.append(_Term("unit", {"unit_id": f.unit_id}, lambda v: A.c.unit_id == v["unit_id"]))
    if f.task_no is not None:
        terms.append(_Term("task", {"task_no": f.task_no}, lambda v: A.c.task_no == v["task_no"]))
    if f.stage is not None:
        terms.append(_Term("stage", {"stage": f.stage.value}, lambda v: A.c.stage == v["stage"]))
    if f.overdue == "any":
        terms.append(_Term("overdue_any", {"overdue_above": 0}, lambda v: A.c.overdue_rank > v["overdue_above"]))
    elif f.overdue:
        rank = OVERDUE_RANK[OverdueLevel(f.overdue)]
        terms.append(_Term("overdue", {"overdue_rank": rank}, lambda v: A.c.overdue_rank == v["overdue_rank"]))
    if f.tasks_by_programme is not None:
        groups = [(p, t) for p, t in f.tasks_by_programme.items() if t]
        values: dict[str, Any] = {}
        for i, (p, tasks) in enumerate(groups):
            values[f"g{i}"] = p
            values.update({f"g{i}_{j}": t for j, t in enumerate(tasks)})

        def in_group(v: Mapping[str, Any]) -> Any:
            if not groups:
                return A.c.assignment_id.is_(None)
            return or_(*(
                and_(A.c.programme_id == v[f"g{i}"], A.c.task_no.in_([v[f"g{i}_{j}"] for j in range(len(tasks))]))
                for i, (_, tasks) in enumerate(groups)
            ))  # fmt: skip

        terms.append(_Term("group", values, in_group))
    return terms


def where(f: StatusFilter) -> list[Any]:
    return [t.build(t.values) for t in _terms(f)]


# The columns of an AssignmentSummary, in its field order: a page never reads a row's `state`.
SUMMARY_COLUMNS = (
    A.c.assignment_id, A.c.programme_id, A.c.task_no, A.c.task_title, A.c.unit_id, A.c.role, A.c.stage,
    A.c.year, A.c.overdue_level, A.c.next_deadline, A.c.percent,
)  # fmt: skip
SUMMARY_FIELDS = tuple(str(c.name) for c in SUMMARY_COLUMNS)  # plain str: orjson keys
_NEXT_DEADLINE = SUMMARY_FIELDS.index("next_deadline")


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


def _page_statement(conds: list[Any], limit: Any, offset: Any, columns: Sequence[Any] = SUMMARY_COLUMNS) -> Any:
    """Summary columns of one page, most urgent first (the order of store.URGENCY, which an
    index serves), and the filter's total as an uncorrelated scalar subquery (evaluated once),
    so that a page is one statement."""
    count = select(func.count()).select_from(A).where(*conds).scalar_subquery()
    return select(*columns, count.label("total")).where(*conds).order_by(*URGENCY).limit(limit).offset(offset)


# On SQLite each item is written by SQLite's json_object, but `percent`: SQLite (3.40) writes a
# REAL with 15 significant digits, which does not read back as the same float (100/3). It is
# the last field of an AssignmentSummary, so the item is completed in Python (_page_document).
# Building 50 rows of 11 Python values and a dict each, for orjson to take apart again, was
# half of the page's cost.
_PERCENT = SUMMARY_FIELDS.index("percent")
if _PERCENT != len(SUMMARY_FIELDS) - 1:
    raise RuntimeError("readmodel: percent must stay the last summary field (see _page_document)")


def _json_pairs() -> list[Any]:
    pairs: list[Any] = []
    for c in SUMMARY_COLUMNS[:_PERCENT]:
        pairs += [literal_column(f"'{c.name}'"), func.json(c) if c.name == "next_deadline" else c]
    return pairs


_JSON_COLUMNS: tuple[Any, ...] = (func.json_object(*_json_pairs()), A.c.percent)


def _page_document(rows: Sequence[Sequence[Any]], total: int) -> bytes:
    """page_json's document from (json_object without percent, percent, total) rows."""
    dumps = orjson.dumps
    items = b",".join(b"%s,\"percent\":%s}" % (r[0][:-1].encode(), dumps(r[1])) for r in rows)
    return b'{"items":[%s],"total":%d}' % (items, total)


async def status_rows(engine: AsyncEngine, f: StatusFilter, limit: int, offset: int) -> tuple[list[Any], int]:
    """One page of summary rows (in SUMMARY_COLUMNS order) and the number of rows that match."""
    conds = where(f)
    async with engine.connect() as conn:
        rows = list((await conn.execute(_page_statement(conds, limit, offset))).all())
        if rows:
            return rows, int(rows[0].total)
        return rows, int((await conn.execute(select(func.count()).select_from(A).where(*conds))).scalar_one())


class Answer(NamedTuple):
    body: bytes
    cache: Literal["hit", "miss", "bypass"] | None  # None: no cache on this database
    stored: bool = False  # kept for the next request


_NAMED = sqlite_dialect(paramstyle="named")
_STATE_SQL = f"SELECT state FROM {A.name} WHERE assignment_id = ?"


class StatusReader:
    """Reads status pages (`status_rows`) and single rows' state, on SQLite without the async
    driver's cost.

    aiosqlite runs every call on its own thread and hands the result back to the event loop:
    about five such round trips per page (cursor, execute, fetch, close, the pool's rollback),
    each dearer than the indexed read itself. On a SQLite file the reader instead keeps one
    read-only (`query_only`) sqlite3 connection for this process and reads in the event loop:
    an indexed page of 50 rows takes a fraction of a millisecond, and a WAL reader neither
    waits for the projection's writer nor holds it up. Each page is one statement, so the rows
    and the total come from one snapshot. The SQL of each filter shape is compiled once, with
    bind parameters, from the same conditions as `where()`. With `cache_bytes`, answers are kept
    until the file changes (`answer()`, services/progress/answers.py). Other databases (PostgreSQL with
    asyncpg, no thread in between) go through the engine as before.
    """

    def __init__(self, engine: AsyncEngine, cache_bytes: int = 0) -> None:
        self.engine = engine
        url = engine.url
        file = url.database if url.get_backend_name() == "sqlite" else None
        self.path = file if file and file != ":memory:" and not file.startswith("file:") else None
        self._conn: sqlite3.Connection | None = None
        self._sql: dict[tuple[Any, ...], tuple[str, str, str]] = {}
        # Only on a SQLite file: `PRAGMA data_version` is what tells a kept answer is still true.
        self.cache = AnswerCache(cache_bytes) if self.path is not None and cache_bytes > 0 else None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # autocommit (no transaction left open between pages); the writer keeps WAL mode on
            conn = sqlite3.connect(self.path or "", timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA query_only = ON")
            self._conn = conn
            if self.cache is not None:  # data_version is per connection: the old numbers mean nothing
                self.cache.clear()
        return self._conn

    def _compiled(self, terms: list[_Term]) -> tuple[str, str, str]:
        """(page rows, page as JSON items, total) statements of one filter shape."""
        key = tuple((t.name, *t.values) for t in terms)
        sql = self._sql.get(key)
        if sql is None:
            conds = [t.build({name: bindparam(name) for name in t.values}) for t in terms]
            limit: Any = bindparam("limit")
            offset: Any = bindparam("offset")
            page = _page_statement(conds, limit, offset)
            items = _page_statement(conds, limit, offset, _JSON_COLUMNS)
            total = select(func.count()).select_from(A).where(*conds)
            page_sql, items_sql, total_sql = (str(q.compile(dialect=_NAMED)) for q in (page, items, total))
            sql = self._sql[key] = (page_sql, items_sql, total_sql)
        return sql

    def _rows(self, terms: list[_Term], limit: int, offset: int, which: int) -> tuple[list[Any], int]:
        sql = self._compiled(terms)
        values: dict[str, Any] = {k: v for t in terms for k, v in t.values.items()}
        conn = self._connection()
        rows = conn.execute(sql[which], {**values, "limit": limit, "offset": offset}).fetchall()
        if rows:
            return rows, int(rows[0][-1])
        return rows, int(conn.execute(sql[2], values).fetchone()[0])

    async def page(self, f: StatusFilter, limit: int, offset: int) -> tuple[list[Any], int]:
        """Summary rows (SUMMARY_COLUMNS order, then the total) and the filter's total."""
        if self.path is None:
            return await status_rows(self.engine, f, limit, offset)
        return self._rows(_terms(f), limit, offset, 0)

    async def page_json(self, f: StatusFilter, limit: int, offset: int, fresh: bool = False) -> Answer:
        """The page as the JSON of `Page[AssignmentSummary]` (what `page_json(*page(...))` makes)."""
        if self.path is None:
            return Answer(page_json(*await status_rows(self.engine, f, limit, offset)), None)
        terms = _terms(f)
        key = ("status", tuple((t.name, *t.values.values()) for t in terms), limit, offset)

        async def compute() -> bytes:
            return _page_document(*self._rows(terms, limit, offset, 1))

        return await self.answer(key, compute, fresh)

    async def answer(self, key: Hashable, compute: Callable[[], Awaitable[bytes]], fresh: bool = False) -> Answer:
        """`compute()`'s body, or the one kept for `key` if the database has not changed since
        (`fresh`: compute it anyway, and keep that). Computed without a cache on other databases."""
        if self.cache is None:
            return Answer(await compute(), None)
        version = int(self._connection().execute("PRAGMA data_version").fetchone()[0])
        kept = self.cache.get(version, key)  # called even when fresh: it follows the version
        if kept is not None and not fresh:
            return Answer(kept, "hit")
        body = await compute()
        stored = self.cache.put(version, key, body)
        # "bypass": there was an answer to give, but the request asked for a new one
        return Answer(body, "bypass" if kept is not None else "miss", stored)

    async def state(self, assignment_id: str) -> str | None:
        """The row's AssignmentState JSON (the fold as of the read model's position), or None."""
        if self.path is None:
            async with self.engine.connect() as conn:
                q = select(A.c.state).where(A.c.assignment_id == assignment_id)
                return (await conn.execute(q)).scalar_one_or_none()
        row = self._connection().execute(_STATE_SQL, (assignment_id,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


async def status(engine: AsyncEngine, f: StatusFilter, limit: int, offset: int) -> tuple[list[AssignmentSummary], int]:
    """Most urgent first: highest overdue level, then the nearest deadline."""
    rows, total = await status_rows(engine, f, limit, offset)
    return [summary(r) for r in rows], total


def page_json(rows: Sequence[Sequence[Any]], total: int) -> bytes:
    """The JSON of `Page[AssignmentSummary]` for these rows, written straight from the columns.

    The same document FastAPI would make from `status()`'s models (tests compare the two), without
    building and re-validating 50 pydantic objects per request. Every column was written by the
    projection from a validated AssignmentState (`projection.row_of`); `next_deadline` is already
    the JSON of its Deadline model (`Deadline.model_dump_json()`), so it is embedded as it is.
    """
    items = []
    for r in rows:
        item = dict(zip(SUMMARY_FIELDS, r, strict=False))
        nxt = r[_NEXT_DEADLINE]
        item["next_deadline"] = orjson.Fragment(nxt) if nxt else None
        items.append(item)
    return orjson.dumps({"items": items, "total": total})


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
