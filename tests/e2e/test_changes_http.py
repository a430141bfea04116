"""Changes during the year over HTTP on the real stack (issue 21): an extension asked by a unit and
decided by a supervisor, and a bulk 催办 with its preview, its limit and its progress."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.ids import assignment_id
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


@pytest.fixture(scope="module")
async def programme(stack: Stack) -> str:
    """Starting next year, so every deadline's programme year is next year whatever today is."""
    body = small_programme(start_year=china_today().year + 1)
    sup = stack.headers("supervisor")
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{stack.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=sup)
        assert r.status_code == 200, r.text
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{body.programme_id}/dispatch", headers=sup)
        assert r.status_code == 200 and r.json()["started"] == 7, r.text

        async def all_rows() -> bool:
            page = await get_json(c, f"{stack.progress_url}/v1/status", sup, programme_id=body.programme_id)
            return bool(page["total"] == 7)

        await until(all_rows, "the read model has the 7 assignments")
    return body.programme_id


async def test_an_extension_over_http(stack: Stack, programme: str) -> None:
    aid = assignment_id(programme, 2, "wanzhou")
    unit, sup = stack.headers("department", "wanzhou"), stack.headers("supervisor")
    url = f"{stack.progress_url}/v1/assignments/{aid}"
    year = china_today().year + 1
    async with httpx.AsyncClient(timeout=30) as c:
        detail = await get_json(c, url, unit)
        [acceptance] = [d for d in detail["deadlines"] if d["key"] == "acceptance"]
        asked = {"deadline_key": "acceptance", "new_due": f"{year}-03-01", "reason": "新班子到任，需重新研究"}

        # Refusals: the wrong role (403), a body without a reason (422), a date outside the year (409).
        r = await c.post(f"{url}/extensions", json=asked, headers=stack.headers("verifier"))
        assert r.status_code == 403 and "role verifier may not do this" in r.json()["detail"]
        r = await c.post(f"{url}/extensions", json={**asked, "reason": ""}, headers=unit)
        assert r.status_code == 422 and "reason" in r.text
        r = await c.post(f"{url}/extensions", json={**asked, "new_due": f"{year + 1}-01-05"}, headers=unit)
        assert r.status_code == 409
        assert r.json()["detail"] == f"the new date {year + 1}-01-05 is outside the programme year {year} of acceptance"

        r = await c.post(f"{url}/extensions", json=asked, headers=unit)
        assert r.status_code == 200, r.text
        n = r.json()["n"]
        assert n == 1
        r = await c.post(f"{url}/extensions", json=asked, headers=unit)
        assert r.status_code == 409
        assert (
            r.json()["detail"] == "extension request 1 for acceptance is still open: wait for the supervisor's decision"
        )
        r = await c.post(f"{url}/extensions/{n}/decision", json={"decision": "approve"}, headers=unit)
        assert r.status_code == 403

        decision = {"decision": "approve", "new_due": f"{year}-02-26", "reason": "同意延至二月底"}
        r = await c.post(f"{url}/extensions/{n}/decision", json=decision, headers=sup)
        assert r.status_code == 200, r.text
        detail = await get_json(c, url, unit)
        [moved] = [d for d in detail["deadlines"] if d["key"] == "acceptance"]
        assert (moved["due"], acceptance["due"] < moved["due"]) == (f"{year}-02-26", True)
        assert detail["extensions"][0]["status"] == "approved"
        assert detail["extensions"][0]["approved_due"] == f"{year}-02-26"

    types = [e.type for e in await stream_events(stack.js, aid)]
    assert types[-2:] == ["ExtensionRequested", "ExtensionApproved"]


async def test_bulk_reminders_preview_limit_and_progress(stack: Stack, programme: str) -> None:
    sup = stack.headers("supervisor")
    url = f"{stack.progress_url}/v1/reminders"
    who: dict[str, Any] = {"programme_id": programme, "unit_id": "yuzhong"}
    async with httpx.AsyncClient(timeout=60) as c:
        r = await c.post(url, json={"message": "请于本周内签收", **who, "dry_run": True}, headers=sup)
        assert r.status_code == 200, r.text
        assert (r.json()["state"], r.json()["matched"]) == ("preview", 3)
        r = await c.post(url, json={"message": "请于本周内签收", **who, "limit": 2}, headers=sup)
        assert r.status_code == 409
        assert (
            r.json()["detail"] == "3 open assignments match, more than the limit 2: narrow the filter or raise `limit`"
        )
        r = await c.post(url, json={"message": "m", **who}, headers=stack.headers("department", "yuzhong"))
        assert r.status_code == 403

        r = await c.post(url, json={"message": "请于本周内签收", **who}, headers=sup)
        assert r.status_code == 200, r.text
        assert (r.json()["state"], r.json()["sent"], r.json()["failed"]) == ("done", 3, 0)

        # In the background: 202, then the progress at the Location.
        body = {"message": "请抓紧办理", "programme_id": programme, "task_no": 1}
        r = await c.post(url, json=body, headers=sup, params={"wait": "false"})
        assert r.status_code == 202, r.text
        where = stack.progress_url + r.headers["location"]

        async def finished() -> dict[str, Any] | None:
            status: dict[str, Any] = await get_json(c, where, sup)
            return status if status["state"] != "running" else None

        done = await until(finished, "the bulk reminder finished")
        assert (done["state"], done["matched"], done["sent"]) == ("done", 3, 3)

    events = await stream_events(stack.js)
    reminded = [e for e in events if e.type == "ManualReminderIssued"]
    first = sorted(e.assignment_id or "" for e in reminded if e.payload["message"] == "请于本周内签收")
    assert first == sorted(assignment_id(programme, t, "yuzhong") for t in (1, 2, 3))
    second = sorted(e.unit_id or "" for e in reminded if e.payload["message"] == "请抓紧办理")
    assert second == ["fgw", "jw", "yuzhong"]
    assert all(e.actor.role == "supervisor" for e in reminded)
