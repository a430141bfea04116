"""A district's year, end to end: real nats-server, Temporal dev server, worker, both services over HTTP.

import -> dispatch -> inbox -> accept -> plan (returned, resubmitted, approved) -> report (retried with
the same Idempotency-Key) -> verification requested -> failed -> rework -> passed -> next year.
"""

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


def plan_for(year: int) -> dict[str, Any]:
    return {
        "year": year,
        "milestones": [{"title": "完成年度绿色建筑比例目标", "due": f"{year}-12-20"}],
        "indicators": [{"name": "绿色建筑占比", "unit": "%", "target": 70}],
    }


def report_for(year: int) -> dict[str, Any]:
    """A report on the year's first quarter, which has begun whenever in the year the test runs."""
    return {
        "period": f"{year}-Q1",
        "percent": 60,
        "narrative": "新建建筑中绿色建筑占比达到 68%",
        "indicator_values": [{"name": "绿色建筑占比", "value": 68}],
        "evidence": [],
    }


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-e2e-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("e2e"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


@pytest.fixture(scope="module")
async def programme(stack: Stack) -> dict[str, Any]:
    body = small_programme(start_year=china_today().year)
    async with httpx.AsyncClient(timeout=30) as c:
        admin = stack.headers("admin")
        r = await c.post(f"{stack.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["imported"] is True
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{body.programme_id}/dispatch", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["started"] == 7 and r.json()["skipped"] == 0
    return {"id": body.programme_id, "body": body}


async def test_a_district_year_from_inbox_to_next_year(stack: Stack, programme: dict[str, Any]) -> None:
    pid = programme["id"]
    aid = assignment_id(pid, 3, "yuzhong")
    district, sup, ver = stack.headers("department", "yuzhong"), stack.headers("supervisor"), stack.headers("verifier")
    a, p = stack.assignment_url, stack.progress_url

    async with httpx.AsyncClient(timeout=30) as c:

        async def cmd(path: str, headers: dict[str, str], body: Any = None, **kw: Any) -> dict[str, Any]:
            r = await c.post(f"{p}/v1/assignments/{aid}{path}", json=body, headers={**headers, **kw})
            assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
            return dict(r.json())

        inbox = await get_json(c, f"{a}/v1/units/yuzhong/assignments", district)
        assert inbox["total"] == 3
        row = next(i for i in inbox["items"] if i["assignment_id"] == aid)
        assert row["task_no"] == 3 and row["task_title"] == "建设高品质绿色建筑" and row["role"] == "responsible"

        r = await c.post(f"{p}/v1/assignments/{aid}/accept", headers=district)
        assert r.status_code == 200, r.text
        # The year the workflow works in, by the server's clock (the programme's start year, unless
        # a year ended since the programme was made).
        year = r.json()["year"]
        assert r.json()["stage"] == "planning" and year >= programme["body"].schedule.start_year
        plan, report = plan_for(year), report_for(year)

        assert (await cmd("/plans", district, plan))["stage"] == "plan_submitted"
        returned = await cmd(f"/plans/{year}/review", sup, {"decision": "return", "comment": "指标需量化到季度"})
        assert returned["stage"] == "planning"
        assert (await cmd("/plans", district, plan))["stage"] == "plan_submitted"
        assert (await cmd(f"/plans/{year}/review", sup, {"decision": "approve", "comment": "同意"}))["stage"] == (
            "implementing"
        )

        # A report names only evidence uploaded for the assignment.
        files = {"file": ("统计表.pdf", b"%PDF-1.7\n%%EOF\n")}
        up = await c.post(f"{p}/v1/assignments/{aid}/evidence", files=files, headers=district)
        assert up.status_code == 201, up.text
        report["evidence"] = [{k: up.json()[k] for k in ("name", "sha256", "size")}]
        key = f"report-{uuid.uuid4()}"
        first = await cmd("/reports", district, report, **{"Idempotency-Key": key})
        retried = await cmd("/reports", district, report, **{"Idempotency-Key": key})
        assert first["replayed"] is False and retried["replayed"] is True
        assert retried["event_ids"] == first["event_ids"]

        assert (await cmd("/verification-requests", district, {"note": "年度任务已完成"}))["stage"] == "verifying"
        failed = await cmd("/verification", ver, {"decision": "fail", "findings": "佐证材料不全"})
        assert failed["stage"] == "implementing"

        await cmd("/reports", district, {**report, "percent": 100, "narrative": "补充佐证材料"})
        assert (await cmd("/verification-requests", district))["stage"] == "verifying"
        passed = await cmd("/verification", ver, {"decision": "pass", "findings": "通过"})
        assert (passed["stage"], passed["year"]) == ("planning", year + 1)

        detail = await until(lambda: _detail_in_year(c, f"{p}/v1/assignments/{aid}", district, year + 1))
        assert detail["stage"] == "planning" and detail["counts"]["reports"] == 2
        assert detail["counts"]["plans_returned"] == 1 and detail["counts"]["verifications_failed"] == 1

        async def status_row() -> dict[str, Any] | None:
            page = await get_json(c, f"{p}/v1/status", sup, unit_id="yuzhong", task_no=3)
            rows = [i for i in page["items"] if i["assignment_id"] == aid and i["year"] == year + 1]
            return rows[0] if rows else None

        assert (await until(status_row))["stage"] == "planning"

        async def inbox_row() -> dict[str, Any] | None:
            page = await get_json(c, f"{a}/v1/units/yuzhong/assignments", district)
            rows = [i for i in page["items"] if i["assignment_id"] == aid and i["year"] == year + 1]
            return rows[0] if rows else None

        assert (await until(inbox_row))["stage"] == "planning"

    events = await stream_events(stack.js, aid)
    types = [e.type for e in events]
    assert types.count("ProgressReported") == 2, types  # the retried report was not reported twice
    assert types.count("AnnualPlanReturned") == 1 and types.count("VerificationFailed") == 1
    assert "VerificationPassed" in types and types[-1] == "YearStarted"
    by_type = {e.type: e for e in events}
    assert by_type["AnnualPlanApproved"].actor.role == "supervisor"
    assert by_type["VerificationPassed"].actor.role == "verifier"
    assert by_type["AssignmentAccepted"].actor.unit_id == "yuzhong"


async def _detail_in_year(c: httpx.AsyncClient, url: str, headers: dict[str, str], year: int) -> Any:
    body = await get_json(c, url, headers)
    return body if body["year"] == year else None


async def test_repeating_import_and_dispatch_changes_nothing(stack: Stack, programme: dict[str, Any]) -> None:
    admin = stack.headers("admin")
    async with httpx.AsyncClient(timeout=30) as c:
        body = programme["body"].model_dump(mode="json")
        r = await c.post(f"{stack.assignment_url}/v1/programmes", json=body, headers=admin)
        assert r.status_code == 200 and r.json()["imported"] is False
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{programme['id']}/dispatch", headers=admin)
        assert r.status_code == 200, r.text
        assert (r.json()["started"], r.json()["skipped"], r.json()["total"]) == (0, 7, 7)
        assert "already" in r.json()["message"]
    imported = [e for e in await stream_events(stack.js) if e.type == "ProgrammeImported"]
    assert len(imported) == 1 and imported[0].programme_id == programme["id"]


async def test_supervisor_status_filters(stack: Stack, programme: dict[str, Any]) -> None:
    sup = stack.headers("supervisor")
    async with httpx.AsyncClient(timeout=30) as c:
        url = f"{stack.progress_url}/v1/status"

        async def all_rows() -> Any:
            page = await get_json(c, url, sup, programme_id=programme["id"])
            return page if page["total"] == 7 else None

        await until(all_rows)
        group1 = await get_json(c, url, sup, programme_id=programme["id"], group=1)
        assert group1["total"] == 5 and {i["task_no"] for i in group1["items"]} == {1, 2}
        paged = await get_json(c, url, sup, programme_id=programme["id"], limit=2, offset=2)
        assert paged["total"] == 7 and len(paged["items"]) == 2
        mine = await get_json(c, url, stack.headers("department", "wanzhou"))
        assert mine["total"] == 1 and mine["items"][0]["unit_id"] == "wanzhou"
        units = await get_json(c, f"{stack.assignment_url}/v1/units", stack.headers("auditor"), kind="district")
        assert {u["unit_id"] for u in units["items"]} == {"yuzhong", "wanzhou"}

        summary = f"{stack.progress_url}/v1/status/summary"
        by_group = await get_json(c, summary, sup, programme_id=programme["id"], by="group")
        assert {i["key"]: i["total"] for i in by_group["items"]} == {"1": 5, "2": 2}
        by_year = await get_json(c, summary, sup, programme_id=programme["id"], by="year")
        assert sum(i["total"] for i in by_year["items"]) == 7
        assert all(set(i["overdue"]) == {"blue", "yellow", "red"} for i in by_year["items"])
        own = await get_json(c, summary, stack.headers("department", "wanzhou"), by="unit")
        assert [i["key"] for i in own["items"]] == ["wanzhou"]
        bad = await c.get(summary, headers=sup, params={"by": "colour"})
        assert bad.status_code == 422
