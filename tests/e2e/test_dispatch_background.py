"""Dispatch in the background: 202 at once, progress on GET, a second request joins the running one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.e2e.support import Stack, get_json, running_stack, small_programme, stream_events
from tests.support.clock import china_today
from tests.support.waiting import until


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-e2e-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("e2e"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


async def test_background_dispatch_reports_progress_and_is_joined(stack: Stack) -> None:
    body = small_programme(start_year=china_today().year)
    pid = body.programme_id
    a = stack.assignment_url
    sup = stack.headers("supervisor")
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{a}/v1/programmes", json=body.model_dump(mode="json"), headers=stack.headers("admin"))
        assert r.status_code == 200, r.text
        before = await get_json(c, f"{a}/v1/programmes/{pid}/dispatch", stack.headers("auditor"))
        assert (before["state"], before["total"], before["started"]) == ("not_started", 7, None)

        r = await c.post(f"{a}/v1/programmes/{pid}/dispatch", params={"wait": "false"}, headers=stack.headers("admin"))
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"/v1/programmes/{pid}/dispatch"
        assert r.json()["state"] in {"running", "done"} and r.json()["total"] == 7
        # A second request while it runs joins it (or, once done, starts nothing new).
        joined = await c.post(f"{a}/v1/programmes/{pid}/dispatch", headers=stack.headers("admin"))
        assert joined.status_code == 200, joined.text
        assert joined.json()["started"] + joined.json()["skipped"] == 7

        async def finished() -> Any:
            status = await get_json(c, f"{a}/v1/programmes/{pid}/dispatch", sup)
            return status if status["state"] != "running" else None

        status = await until(finished)
        assert (status["state"], status["failed"], status["dispatched_at"] is not None) == ("done", 0, True)

        async def all_created() -> Any:
            events = await stream_events(stack.js)
            created = [e for e in events if e.type == "AssignmentCreated" and e.programme_id == pid]
            return created if len(created) >= 7 else None

        created = await until(all_created, timeout=60)
        assert len(created) == 7 and len({e.assignment_id for e in created}) == 7

        ghost = await c.get(f"{a}/v1/programmes/no-such-programme/dispatch", headers=sup)
        assert ghost.status_code == 404, ghost.text
        refused = await c.post(f"{a}/v1/programmes/{pid}/dispatch", params={"wait": "false"},
                               headers=stack.headers("department", "wanzhou"))  # fmt: skip
        assert refused.status_code == 403, refused.text
