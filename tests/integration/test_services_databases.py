"""The assignment service on SQLite and on PostgreSQL: import, dispatch, inbox, accept.

Real workflows (worker on the Temporal dev server) publish the events the inbox projection
folds; on PostgreSQL the assignment and progress services share one database, each with its
own alembic version table.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.ids import assignment_id
from services.shared import migrate
from services.shared.db import make_engine
from tests.databases import TestDatabase
from tests.e2e.support import Stack, get_json, running_stack, small_programme
from tests.support.clock import china_today
from tests.support.waiting import until


@pytest.fixture
async def stack(
    database: TestDatabase, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-db-{uuid.uuid4().hex[:8]}"
    urls = {name: database.url(name) for name in ("assignment", "progress")}
    async with running_stack(database.tmp, nats_url, temporal_client, temporal_address, tq, db_urls=urls) as s:
        yield s


async def test_import_dispatch_inbox_accept(stack: Stack, database: TestDatabase) -> None:
    body = small_programme(start_year=china_today().year)
    pid = body.programme_id
    sup, district = stack.headers("supervisor"), stack.headers("department", "yuzhong")
    a = stack.assignment_url
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{a}/v1/programmes", json=body.model_dump(mode="json"), headers=stack.headers("admin"))
        assert r.status_code == 200 and r.json()["imported"] is True, r.text
        r = await c.post(f"{a}/v1/programmes/{pid}/dispatch", headers=stack.headers("admin"))
        assert r.status_code == 200 and (r.json()["started"], r.json()["skipped"]) == (7, 0), r.text

        # The same import and dispatch again change nothing.
        r = await c.post(f"{a}/v1/programmes", json=body.model_dump(mode="json"), headers=stack.headers("admin"))
        assert r.status_code == 200 and r.json()["imported"] is False
        r = await c.post(f"{a}/v1/programmes/{pid}/dispatch", headers=stack.headers("admin"))
        assert (r.json()["started"], r.json()["skipped"]) == (0, 7)

        async def inbox_with_deadlines() -> dict[str, Any] | None:
            page = await get_json(c, f"{a}/v1/units/yuzhong/assignments", district)
            folded = page["total"] == 3 and all(i["next_deadline"] for i in page["items"])
            return page if folded else None  # every AssignmentCreated folded into the projection

        inbox = await until(inbox_with_deadlines, timeout=30)
        assert {i["task_no"] for i in inbox["items"]} == {1, 2, 3}
        assert {i["stage"] for i in inbox["items"]} == {"assigned"}

        aid = assignment_id(pid, 3, "yuzhong")
        r = await c.post(f"{stack.progress_url}/v1/assignments/{aid}/accept", headers=district)
        assert r.status_code == 200 and r.json()["stage"] == "planning", r.text

        async def accepted() -> bool:
            page = await get_json(c, f"{a}/v1/units/yuzhong/assignments", district, stage="planning")
            return [i["assignment_id"] for i in page["items"]] == [aid]

        await until(accepted, timeout=30)
        units = await get_json(c, f"{a}/v1/units", sup, kind="district")
        assert {u["unit_id"] for u in units["items"]} == {"yuzhong", "wanzhou"}

    for service in ("assignment", "progress"):
        engine = make_engine(stack.db_urls[service])
        try:
            assert engine.dialect.name == database.backend
            assert await migrate.current(engine, service) == migrate.head(service)
        finally:
            await engine.dispose()
