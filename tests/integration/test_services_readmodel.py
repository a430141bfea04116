"""The progress read model against a real JetStream: built incrementally by the durable consumer,
unchanged by redelivered events, and identical when rebuilt from the stream; on SQLite and on
PostgreSQL (tests/databases.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from contracts.api import AssignmentDetail, AssignmentSummary, Page
from contracts.base import Actor, Role, Stage, UserRole
from contracts.events import AssignmentCancelled, AssignmentCreated, Deadline, Event
from contracts.fold import AssignmentState
from services.progress import readmodel
from services.progress.api import detail
from services.progress.store import create_tables
from services.shared.db import make_engine
from tests.databases import TestDatabase
from tests.e2e.support import EventFactory, Stack, get_json, lifecycle_events, running_stack
from tests.support.publishing import publish
from tests.support.waiting import caught_up


@pytest.fixture
async def stack(
    database: TestDatabase, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-rm-{uuid.uuid4().hex[:8]}"
    urls = {name: database.url(name) for name in ("assignment", "progress")}
    async with running_stack(
        database.tmp, nats_url, temporal_client, temporal_address, tq, worker=False, db_urls=urls
    ) as s:
        yield s


async def test_incremental_then_redelivered_then_rebuilt(stack: Stack) -> None:
    events = lifecycle_events("rm-prog", n_units=40)
    last = await publish(stack.js, events)
    await caught_up(stack, last)
    engine = make_engine(stack.db_urls["progress"])
    try:
        incremental = await readmodel.snapshot(engine)
        assert len(incremental) == 40

        # The same facts again under new message ids: the stream keeps them, the fold ignores them.
        last = await publish(stack.js, events[:15], msg_id_suffix="-again")
        await caught_up(stack, last)
        assert await readmodel.snapshot(engine) == incremental

        seen: list[tuple[int, int]] = []
        read = await readmodel.rebuild(engine, stack.js, batch=16, progress=lambda d, t: seen.append((d, t)))
        assert read == len(events) + 15 and seen[-1] == (read, read)
        assert await readmodel.snapshot(engine) == incremental
        assert await readmodel.position(engine) == last

        # The live consumer carries on after a rebuild.
        more = lifecycle_events("rm-prog-2", n_units=3)
        last = await publish(stack.js, more)
        await caught_up(stack, last)
        assert len(await readmodel.snapshot(engine)) == 43
    finally:
        await engine.dispose()


async def test_status_reads_the_read_model(stack: Stack) -> None:
    last = await publish(stack.js, lifecycle_events("rm-status", n_units=9))
    await caught_up(stack, last)
    async with httpx.AsyncClient(timeout=10) as c:
        sup = stack.headers("supervisor")
        page = await get_json(c, f"{stack.progress_url}/v1/status", sup, overdue="yellow")
        assert page["total"] == 3 and all(i["overdue_level"] == "yellow" for i in page["items"])
        page = await get_json(c, f"{stack.progress_url}/v1/status", sup, limit=5)
        assert page["total"] == 9 and len(page["items"]) == 5 and page["items"][0]["overdue_level"] == "yellow"


def varied_events(programme_id: str) -> list[Event]:
    """Assignments in several stages and escalation levels, with different (and no) deadlines."""
    out: list[Event] = []
    supervisor = Actor(sub="supervisor:t", role=UserRole.SUPERVISOR)
    for i in range(24):
        f = EventFactory(programme_id, 1 + i // 6, f"unit{i % 6}")
        out.append(f.created(year=2026 + i % 3))  # acceptance due on 16 March of that year
        if i % 2:
            out.append(f.accepted(year=2026 + i % 3))
        if i % 5 == 1:
            out.append(f.escalated(("blue", "yellow", "red")[i % 3], year=2026 + i % 3))
        if i % 7 == 3:
            out.append(f.next(AssignmentCancelled(reason="merged"), supervisor))  # no deadline left
    return out


def urgency(row: dict[str, Any]) -> tuple[Any, ...]:
    """The documented order, computed here from the rows: highest level, nearest deadline (none
    last), then the id."""
    due: dt.date | None = row["next_deadline_due"]
    return (-row["overdue_rank"], due is None, due or dt.date.min, row["assignment_id"])


# Titles and percents a page must carry exactly: quotes, backslashes, control and non-ASCII
# characters; floats that need all 17 digits.
TITLES = ['say "hi"', "back\\slash \\n", "tab\tnew\nline\x01", "城市体检 🏙", "</script>", ""]
PERCENTS = [100 / 3, 0.1, 1e-7, 66.66666666666667, 100.0, 12.5]


def tricky_events(programme_id: str) -> list[Event]:
    out: list[Event] = []
    for i, (title, percent) in enumerate(zip(TITLES, PERCENTS, strict=True)):
        f = EventFactory(programme_id, 50 + i, f"unit{i}")
        opens = [Deadline(key="acceptance", kind="acceptance", due=dt.date(2026, 3, 16), year=2026)]
        created = AssignmentCreated(task_title=title, role=Role.RESPONSIBLE, start_year=2026, horizon_year=2030,
                                    opens=opens)  # fmt: skip
        out += [f.next(created), f.accepted(), f.reported(percent)]
    return out


@pytest.fixture
async def folded(database: TestDatabase) -> AsyncIterator[tuple[AsyncEngine, list[dict[str, Any]]]]:
    """A read model (no stream: the events folded straight in) and its rows."""
    engine = make_engine(database.url("progress"))
    try:
        await create_tables(engine)
        events = varied_events("rm-pages") + tricky_events("rm-tricky")
        await readmodel.apply_messages(engine, [(i + 1, e.model_dump_json().encode()) for i, e in enumerate(events)])
        yield engine, await readmodel.snapshot(engine)
    finally:
        await engine.dispose()


def matching(rows: list[dict[str, Any]], f: readmodel.StatusFilter) -> list[dict[str, Any]]:
    """The rows a filter means, most urgent first, computed here from the rows."""

    def keep(r: dict[str, Any]) -> bool:
        groups = f.tasks_by_programme
        level = r["overdue_rank"] > 0 if f.overdue == "any" else r["overdue_level"] == f.overdue
        return (
            f.programme_id in (None, r["programme_id"])
            and f.unit_id in (None, r["unit_id"])
            and f.task_no in (None, r["task_no"])
            and (f.stage is None or r["stage"] == f.stage.value)
            and (f.overdue is None or level)
            and (groups is None or r["task_no"] in groups.get(r["programme_id"], []))
        )

    return sorted(filter(keep, rows), key=urgency)


def as_item(row: dict[str, Any]) -> dict[str, Any]:
    item = {name: row[name] for name in AssignmentSummary.model_fields}
    item["next_deadline"] = orjson.loads(row["next_deadline"]) if row["next_deadline"] else None
    return item


FILTERS = [
    readmodel.StatusFilter(),
    readmodel.StatusFilter(programme_id="rm-pages"),
    readmodel.StatusFilter(unit_id="unit2"),
    readmodel.StatusFilter(task_no=3),
    readmodel.StatusFilter(stage=Stage.PLANNING),
    readmodel.StatusFilter(stage=Stage.CANCELLED),
    readmodel.StatusFilter(overdue="any"),
    readmodel.StatusFilter(overdue="red"),
    readmodel.StatusFilter(overdue="none"),
    readmodel.StatusFilter(programme_id="rm-pages", unit_id="unit1", task_no=1),
    readmodel.StatusFilter(tasks_by_programme={"rm-pages": [1, 3], "rm-tricky": [50, 52]}),
    readmodel.StatusFilter(tasks_by_programme={"rm-pages": []}),
    readmodel.StatusFilter(tasks_by_programme={}),
    readmodel.StatusFilter(unit_id="nobody"),
]


async def test_status_pages_filter_order_and_count(folded: tuple[AsyncEngine, list[dict[str, Any]]]) -> None:
    """Each filter's rows, most urgent first (highest level, nearest deadline with none last,
    then the id), a page of them at a time, with the number of all that match."""
    engine, rows = folded
    assert len(rows) == 24 + len(TITLES) and {r["overdue_rank"] for r in rows} == {0, 1, 2, 3}
    assert any(r["next_deadline"] is None for r in rows) and any(r["next_deadline"] for r in rows)
    reader = readmodel.StatusReader(engine)
    for f in FILTERS:
        want = [as_item(r) for r in matching(rows, f)]
        for limit, offset in [(50, 0), (500, 0), (7, 5), (3, 2), (50, 100)]:
            answer = await reader.page_json(f, limit, offset)
            page = orjson.loads(answer.body)
            assert Page[AssignmentSummary].model_validate(page).total == len(want), f
            assert page["items"] == want[offset : offset + limit], (f, limit, offset)
            assert answer.cache is None
    some = [len(matching(rows, f)) for f in FILTERS]
    assert all(n > 0 for n in some[:-3]) and some[-3:] == [0, 0, 0]  # every filter but the empty ones selects


async def test_titles_and_percents_come_back_exactly(folded: tuple[AsyncEngine, list[dict[str, Any]]]) -> None:
    engine, _ = folded
    f = readmodel.StatusFilter(programme_id="rm-tricky")
    items = orjson.loads((await readmodel.StatusReader(engine).page_json(f, 50, 0)).body)["items"]
    assert sorted(i["task_title"] for i in items) == sorted(TITLES)
    assert sorted(i["percent"] for i in items) == sorted(PERCENTS)


async def test_kept_answers_last_until_the_position_moves(folded: tuple[AsyncEngine, list[dict[str, Any]]]) -> None:
    engine, rows = folded
    reader = readmodel.StatusReader(engine, cache_bytes=1 << 20)
    f = readmodel.StatusFilter(unit_id="unit5")
    first, again = await reader.page_json(f, 50, 0), await reader.page_json(f, 50, 0)
    assert (first.cache, first.stored, again.cache, again.body) == ("miss", True, "hit", first.body)
    late = EventFactory("rm-late", 1, "unit5")
    position = await readmodel.position(engine)
    await readmodel.apply_messages(engine, [(position + 1, late.created().model_dump_json().encode())])
    after = await reader.page_json(f, 50, 0)
    assert after.cache == "miss" and orjson.loads(after.body)["total"] == len(matching(rows, f)) + 1


async def test_status_over_http(stack: Stack) -> None:
    """The API's page is the reader's, and a department sees only its own unit whatever it asks."""
    last = await publish(stack.js, varied_events("rm-http"))
    await caught_up(stack, last)
    engine = make_engine(stack.db_urls["progress"])
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            sup = stack.headers("supervisor")
            got = await get_json(c, f"{stack.progress_url}/v1/status", sup, programme_id="rm-http", limit=7, offset=2)
            f = readmodel.StatusFilter(programme_id="rm-http")
            assert got == orjson.loads((await readmodel.StatusReader(engine).page_json(f, 7, 2)).body)
            assert got["total"] == 24 and len(got["items"]) == 7
            dept = stack.headers("department", "unit2")
            mine = await get_json(c, f"{stack.progress_url}/v1/status", dept, programme_id="rm-http")
            assert mine["total"] == 4 and {i["unit_id"] for i in mine["items"]} == {"unit2"}
            other = await c.get(f"{stack.progress_url}/v1/status", headers=dept, params={"unit_id": "unit3"})
            assert other.status_code == 403
    finally:
        await engine.dispose()


async def test_assignment_detail_from_the_read_model(stack: Stack) -> None:
    """`GET /v1/assignments/{id}?source=read_model` answers from the row's state: the document
    `detail()` makes of the same fold, with the same authorization as the live query."""
    events = varied_events("rm-detail")
    last = await publish(stack.js, events)
    await caught_up(stack, last)
    engine = make_engine(stack.db_urls["progress"])
    try:
        rows = {r["assignment_id"]: r for r in await readmodel.snapshot(engine)}
        async with httpx.AsyncClient(timeout=10) as c:
            sup = stack.headers("supervisor")
            for aid in sorted({e.assignment_id for e in events if e.assignment_id})[:6]:
                got = await get_json(c, f"{stack.progress_url}/v1/assignments/{aid}", sup, source="read_model")
                expected = detail(AssignmentState.model_validate_json(rows[aid]["state"])).model_dump(mode="json")
                assert got == expected
                assert AssignmentDetail.model_validate(got).assignment_id == aid
            aid = next(a for a in rows if a.endswith(".unit2") and a.startswith("rm-detail."))
            mine = stack.headers("department", "unit2")
            assert await get_json(c, f"{stack.progress_url}/v1/assignments/{aid}", mine, source="read_model")
            other, rm = stack.headers("department", "unit3"), {"source": "read_model"}
            r = await c.get(f"{stack.progress_url}/v1/assignments/{aid}", headers=other, params=rm)
            assert r.status_code == 403
            missing = "rm-detail.t09.nowhere"
            r = await c.get(f"{stack.progress_url}/v1/assignments/{missing}", headers=sup, params=rm)
            assert r.status_code == 404
            r = await c.get(f"{stack.progress_url}/v1/assignments/{aid}", headers=sup, params={"source": "cache"})
            assert r.status_code == 422
    finally:
        await engine.dispose()
