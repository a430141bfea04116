"""The progress read model against a real JetStream: built incrementally by the durable consumer,
unchanged by redelivered events, and identical when rebuilt from the stream; on SQLite and on
PostgreSQL (tests/databases.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.api import AssignmentDetail, AssignmentSummary, Page
from contracts.base import Actor, Stage, UserRole
from contracts.events import AssignmentCancelled, Event
from contracts.fold import AssignmentState
from services.progress import readmodel
from services.progress.api import detail
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
    async with running_stack(database.tmp, nats_url, temporal_client, temporal_address, tq, worker=False,
                             db_urls=urls) as s:
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


async def test_status_pages_are_the_models_in_urgency_order(stack: Stack) -> None:
    """/v1/status writes its pages straight from the summary columns (readmodel.page_json, read
    by StatusReader): the same JSON as the models built by readmodel.status, in the documented
    order, with the filter's total, for every kind of filter and past the last page."""
    last = await publish(stack.js, varied_events("rm-pages"))
    await caught_up(stack, last)
    engine = make_engine(stack.db_urls["progress"])
    try:
        rows = [r for r in await readmodel.snapshot(engine) if r["programme_id"] == "rm-pages"]
        assert len(rows) == 24 and {r["overdue_rank"] for r in rows} == {0, 1, 2, 3}
        assert any(r["next_deadline"] is None for r in rows) and any(r["next_deadline"] for r in rows)
        ordered = [r["assignment_id"] for r in sorted(rows, key=urgency)]
        cases: list[tuple[dict[str, Any], readmodel.StatusFilter]] = [
            ({"programme_id": "rm-pages", "limit": 500}, readmodel.StatusFilter(programme_id="rm-pages")),
            ({"programme_id": "rm-pages", "limit": 7, "offset": 5}, readmodel.StatusFilter(programme_id="rm-pages")),
            ({"programme_id": "rm-pages", "unit_id": "unit2"},
             readmodel.StatusFilter(programme_id="rm-pages", unit_id="unit2")),
            ({"programme_id": "rm-pages", "task_no": 3}, readmodel.StatusFilter(programme_id="rm-pages", task_no=3)),
            ({"programme_id": "rm-pages", "stage": "planning"},
             readmodel.StatusFilter(programme_id="rm-pages", stage=Stage.PLANNING)),
            ({"programme_id": "rm-pages", "overdue": "any"},
             readmodel.StatusFilter(programme_id="rm-pages", overdue="any")),
            ({"programme_id": "rm-pages", "overdue": "red"},
             readmodel.StatusFilter(programme_id="rm-pages", overdue="red")),
            ({"programme_id": "rm-pages", "offset": 100}, readmodel.StatusFilter(programme_id="rm-pages")),
        ]
        async with httpx.AsyncClient(timeout=10) as c:
            sup = stack.headers("supervisor")
            for params, f in cases:
                got = await get_json(c, f"{stack.progress_url}/v1/status", sup, **params)
                Page[AssignmentSummary].model_validate(got)
                limit, offset = int(params.get("limit", 50)), int(params.get("offset", 0))
                items, total = await readmodel.status(engine, f, limit, offset)
                assert got == Page[AssignmentSummary](items=items, total=total).model_dump(mode="json"), params
                matching = [a for a in ordered if a in {i.assignment_id for i in (await readmodel.status(
                    engine, f, 500, 0))[0]}]  # fmt: skip
                assert [i["assignment_id"] for i in got["items"]] == matching[offset : offset + limit], params
                assert got["total"] == len(matching), params
            everything = await get_json(c, f"{stack.progress_url}/v1/status", sup, programme_id="rm-pages", limit=500)
            assert [i["assignment_id"] for i in everything["items"]] == ordered
            # A department still sees only its own unit, whatever it asks for.
            dept = stack.headers("department", "unit2")
            mine = await get_json(c, f"{stack.progress_url}/v1/status", dept, programme_id="rm-pages")
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
            assert (await get_json(c, f"{stack.progress_url}/v1/assignments/{aid}", mine, source="read_model"))
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
