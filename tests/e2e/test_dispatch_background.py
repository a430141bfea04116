"""Dispatch in the background: 202 at once, progress on GET, a second request joins the running one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.ids import assignment_id
from contracts.programme_calendar import ProgrammeCalendar
from tests.e2e.support import Stack, get_json, running_stack, small_programme, stream_events
from tests.support.cli_output import run_cli
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


async def test_dispatch_makes_the_programme_calendar_schedule(stack: Stack) -> None:
    """Over HTTP: dispatch makes the schedule; pause shows paused; a backfill's dates reach the read model once."""
    year = china_today().year - 1
    body = small_programme(programme_id=f"cal-{uuid.uuid4().hex[:6]}", start_year=year, horizon=year + 4)
    pid, a, p, sup = body.programme_id, stack.assignment_url, stack.progress_url, stack.headers("supervisor")
    async with httpx.AsyncClient(timeout=30) as c:
        admin = stack.headers("admin")
        assert (await c.post(f"{a}/v1/programmes", json=body.model_dump(mode="json"), headers=admin)).status_code == 200
        assert (await c.post(f"{a}/v1/programmes/{pid}/dispatch", headers=admin)).status_code == 200
        shown = await get_json(c, f"{a}/v1/programmes/{pid}/schedule", stack.headers("auditor"))
        assert (shown["exists"], shown["paused"], shown["schedule_id"]) == (True, False, f"programme-{pid}-calendar")
        assert (shown["start_year"], shown["end_year"]) == (year, year + 4) and shown["next_due"]

        r = await c.post(f"{a}/v1/programmes/{pid}/schedule/pause", json={"reason": "春节休假"}, headers=sup)
        assert r.status_code == 200 and (r.json()["paused"], r.json()["note"]) == (True, "春节休假"), r.text
        r = await c.post(f"{a}/v1/programmes/{pid}/schedule/unpause", json={}, headers=sup)
        assert r.status_code == 200 and not r.json()["paused"], r.text

        span = {"from_date": f"{year}-01-01", "to_date": f"{year}-12-31"}
        for _ in range(2):  # the second time records nothing new
            r = await c.post(f"{a}/v1/programmes/{pid}/schedule/backfill", json=span, headers=sup)
            assert r.status_code == 200, r.text
            assert [o["key"] for o in r.json()["due"]] == [f"bulletin:{year}-Q{q}" for q in (1, 2, 3)]
        refused = await c.post(f"{a}/v1/programmes/{pid}/schedule/trigger", headers=stack.headers("auditor"))
        assert refused.status_code == 403, refused.text

        # The backfill's runs overlap, so their events may arrive in any order: wait for all three.
        async def shown_in_read_model() -> Any:
            view = await get_json(c, f"{p}/v1/programmes/{pid}/calendar", sup)
            return view if len(view["dates"]) >= 3 else None

        view = await until(shown_in_read_model, timeout=30)
        assert [d["key"] for d in view["dates"]] == [f"bulletin:{year}-Q{q}" for q in (1, 2, 3)]
        assert view["latest_bulletin"] == f"{year}-Q3"
        assert view["evaluation_open"] == []
        events = [e for e in await stream_events(stack.js) if e.programme_id == f"calendar-{pid}"]
        assert sorted(e.payload["period"] for e in events) == [f"{year}-Q{q}" for q in (1, 2, 3)]


async def test_an_open_evaluation_asks_each_unit_for_its_self_evaluation(stack: Stack) -> None:
    """The calendar opens this year's evaluation; the unit sees the 自评 form and sends it; the verifier sees it."""
    year = china_today().year
    body = small_programme(programme_id=f"ev-{uuid.uuid4().hex[:6]}", start_year=year, horizon=year + 4)
    body = body.model_copy(update={
        "schedule": body.schedule.model_copy(update={"evaluation_years": [year]}),
        # opening on 1 January at midnight: whatever today is, this year's evaluation has opened
        "calendar": ProgrammeCalendar(evaluation_opens_on="01-01", at_hour=0),
    })  # fmt: skip
    pid, a, p, admin = body.programme_id, stack.assignment_url, stack.progress_url, stack.headers("admin")
    aid = assignment_id(pid, 3, "yuzhong")
    unit, page = stack.headers("department", "yuzhong"), f"{p}/workbench/assignments/{aid}"
    async with httpx.AsyncClient(timeout=30) as c:
        assert (await c.post(f"{a}/v1/programmes", json=body.model_dump(mode="json"), headers=admin)).status_code == 200
        assert (await c.post(f"{a}/v1/programmes/{pid}/dispatch", headers=admin)).status_code == 200
        assert (await c.post(f"{p}/v1/assignments/{aid}/accept", headers=unit)).status_code == 200
        r = await c.get(page, headers=unit)
        assert r.status_code == 200 and 'id="do-submit_self_evaluation"' not in r.text  # not open yet

        ran = await run_cli(stack, "supervisor", None, "schedule", "backfill", pid, "--from", f"{year}-01-01",
                          "--to", f"{year}-01-01")  # fmt: skip
        assert ran.exit_code == 0 and f"{year} 五年评估开始" in ran.output, ran.output

        async def opened() -> Any:
            view = await get_json(c, f"{p}/v1/programmes/{pid}/calendar", unit)
            return view if view["evaluation_open"] == [year] else None

        await until(opened, timeout=30)
        r = await c.get(page, headers=unit)
        assert r.status_code == 200 and 'id="do-submit_self_evaluation"' in r.text, r.text
        r = await c.post(f"{page}/submit_self_evaluation", data={"year": str(year), "text": "", "score": "120"},
                         headers=unit)  # fmt: skip
        assert r.status_code == 422 and "请填写自评内容" in r.text and "自评得分须为 0 到 100 之间的数字" in r.text
        form = {"year": str(year), "text": "绿色建筑占比达到目标", "score": "92"}
        r = await c.post(f"{page}/submit_self_evaluation", data=form, headers=unit)
        assert r.status_code == 303 and r.headers["location"].endswith("?done=submit_self_evaluation#done"), r.text
        detail = await get_json(c, f"{p}/v1/assignments/{aid}", unit)
        assert (detail["self_evaluation"]["year"], detail["self_evaluation"]["score"]) == (year, 92)
        events = [e for e in await stream_events(stack.js, aid) if e.type == "SelfEvaluationSubmitted"]
        assert [(e.payload["score"], e.actor.unit_id) for e in events] == [(92, "yuzhong")]

        shown = await run_cli(stack, "supervisor", None, "schedule", "show", pid)
        assert shown.exit_code == 0 and "运行中" in shown.output and f"evaluation:{year}" in shown.output, shown.output
