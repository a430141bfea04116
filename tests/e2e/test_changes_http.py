"""Changes during the year over HTTP on the real stack (issue 21): an extension asked by a unit and
decided by a supervisor, and a bulk 催办 with its preview, its limit and its progress."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.ids import assignment_id
from tests.e2e.support import Stack, end_calendars_of, get_json, running_stack, small_programme, stream_events
from tests.support.cli_output import cli_errors, run_cli
from tests.support.clock import china_today
from tests.support.waiting import until
from workflows.calendar import china_year


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
        r = await c.post(
            f"{stack.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=stack.headers("admin")
        )
        assert r.status_code == 200, r.text
        r = await c.post(
            f"{stack.assignment_url}/v1/programmes/{body.programme_id}/dispatch", headers=stack.headers("admin")
        )
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


@pytest.fixture
async def published_years(stack: Stack) -> AsyncIterator[list[int]]:
    """The years a test publishes: their calendar workflows are deleted with the test, so that the tests
    after it on the shared Temporal server start their assignments on the `holidays` package's calendar."""
    years: list[int] = []
    yield years
    await end_calendars_of(stack.temporal, stack.task_queue)


async def test_a_published_calendar_moves_a_running_assignments_deadline(
    stack: Stack, programme: str, published_years: list[int]
) -> None:
    """A weekend day before an acceptance deadline made a working day: the deadline comes a day closer."""
    aid = assignment_id(programme, 1, "fgw")
    sup = stack.headers("supervisor")
    today = china_today()
    async with httpx.AsyncClient(timeout=30) as c:
        detail = await get_json(c, f"{stack.progress_url}/v1/assignments/{aid}", sup)
        due = dt.date.fromisoformat(next(d["due"] for d in detail["deadlines"] if d["key"] == "acceptance"))
        days = (today + dt.timedelta(days=i) for i in range(1, (due - today).days))
        extra = next(d for d in days if d.weekday() >= 5 and d not in china_year(d.year).make_up_workdays)
        package = china_year(extra.year)
        calendar = {
            "year": extra.year,
            "holidays": [d.isoformat() for d in package.days_off],
            "workdays": [d.isoformat() for d in [*package.make_up_workdays, extra]],
            "source": "国办发明电〔测试〕1号",
        }
        url = f"{stack.progress_url}/v1/calendars/{extra.year}"
        r = await c.get(url, headers=sup)
        assert r.status_code == 200 and r.json()["published"] is False and "暂定" in r.json()["message"]
        r = await c.put(url, json=calendar, headers=stack.headers("department", "fgw"))
        assert r.status_code == 403
        r = await c.put(url, json={**calendar, "workdays": [f"{extra.year}-13-01"]}, headers=stack.headers("admin"))
        assert r.status_code == 422 and "workdays" in r.text
        r = await c.put(url, json=calendar, headers=stack.headers("admin"))
        assert r.status_code == 202, r.text
        published_years.append(extra.year)
        assert r.headers["location"] == f"/v1/calendars/{extra.year}"

        async def in_force() -> dict[str, Any] | None:
            status: dict[str, Any] = await get_json(c, url, sup)
            return status if status["state"] == "done" else None

        status = await until(in_force, "the calendar is in force", timeout=120)
        assert (status["published"], status["revision"], status["calendar"]["source"]) == (
            True, 1, "国办发明电〔测试〕1号")  # fmt: skip
        assert status["signalled"] >= 7

        def works(day: dt.date) -> bool:
            return (
                day == extra
                or (day.year == extra.year and day in package.make_up_workdays)
                or (day.weekday() < 5 and day not in china_year(day.year).days_off)
            )

        expected, left = today, 10
        while left:
            expected += dt.timedelta(days=1)
            left -= works(expected)
        assert expected < due

        async def moved() -> dict[str, Any] | None:
            d = await get_json(c, f"{stack.progress_url}/v1/assignments/{aid}", sup)
            acceptance = next(x for x in d["deadlines"] if x["key"] == "acceptance")
            return d if acceptance["due"] == expected.isoformat() else None

        await until(moved, "the acceptance deadline moved")

    events = await stream_events(stack.js)
    [published] = [e for e in events if e.type == "WorkingCalendarPublished"]
    assert (published.payload["revision"], published.actor.role) == (1, "admin")
    recomputed = [e for e in events if e.type == "DeadlinesRecomputed" and e.assignment_id == aid]
    assert recomputed and recomputed[0].payload["source"] == "国办发明电〔测试〕1号"


async def test_the_dashboard_says_next_years_calendar_is_provisional_until_it_is_published(
    stack: Stack, programme: str, published_years: list[int]
) -> None:
    nxt = china_today().year + 1
    page = {**stack.headers("supervisor"), "Accept": "text/html"}
    async with httpx.AsyncClient(base_url=stack.progress_url, timeout=30) as c:
        r = await c.get("/dashboard", headers=page, params={"programme_id": programme})
        assert r.status_code == 200 and 'id="calendar-provisional"' in r.text
        assert f"{nxt} 年放假安排尚未公布" in r.text and "暂定" in r.text
        # Published as the package has it, so no running assignment's deadline moves.
        package = china_year(nxt)
        calendar = {
            "year": nxt,
            "holidays": [d.isoformat() for d in package.days_off],
            "workdays": [d.isoformat() for d in package.make_up_workdays],
            "source": "国办发明电〔测试〕2号",
        }
        r = await c.put(f"/v1/calendars/{nxt}", json=calendar, headers=stack.headers("admin"))
        assert r.status_code == 202, r.text
        published_years.append(nxt)

        async def recorded() -> bool:
            status = await get_json(c, f"{stack.progress_url}/v1/calendars/{nxt}", stack.headers("supervisor"))
            return bool(status["revision"] >= 1)

        await until(recorded, "the publication is recorded", timeout=60)
        r = await c.get("/dashboard", headers=page, params={"programme_id": programme})
        assert r.status_code == 200 and 'id="calendar-provisional"' not in r.text and "暂定" not in r.text


async def test_the_workbench_forms_ask_for_and_decide_an_extension(stack: Stack, programme: str) -> None:
    aid = assignment_id(programme, 3, "jw")
    unit, sup = stack.headers("department", "jw"), stack.headers("supervisor")
    page = f"{stack.progress_url}/workbench/assignments/{aid}"
    year = china_today().year + 1
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(page, headers=unit)
        assert r.status_code == 200 and 'id="do-request_extension"' in r.text and "acceptance" in r.text
        form = {"deadline_key": "acceptance", "new_due": f"{year}-13-01", "reason": ""}
        r = await c.post(f"{page}/request_extension", data=form, headers=unit)
        assert r.status_code == 422 and "请填写申请延至的日期" in r.text and "延期申请须写明理由" in r.text
        form = {"deadline_key": "acceptance", "new_due": f"{year + 1}-01-05", "reason": "人员调整"}
        r = await c.post(f"{page}/request_extension", data=form, headers=unit)
        assert r.status_code == 409 and "新的日期须在该期限所属年度内" in r.text
        form["new_due"] = f"{year}年3月2日"
        r = await c.post(f"{page}/request_extension", data=form, headers=unit)
        assert r.status_code == 303 and r.headers["location"].endswith("?done=request_extension#done")

        r = await c.get(page, headers=sup)
        assert r.status_code == 200 and 'id="do-decide_extension-1"' in r.text and "人员调整" in r.text
        r = await c.post(f"{page}/decide_extension", data={"n": "1", "decision": "refuse", "reason": ""}, headers=sup)
        assert r.status_code == 422 and "不予批准须写明理由" in r.text
        decision = {"n": "1", "decision": "approve", "new_due": f"{year}-02-26", "reason": ""}
        r = await c.post(f"{page}/decide_extension", data=decision, headers=sup)
        assert r.status_code == 303, r.text
        detail = await get_json(c, f"{stack.progress_url}/v1/assignments/{aid}", unit)
        assert next(d["due"] for d in detail["deadlines"] if d["key"] == "acceptance") == f"{year}-02-26"
        assert detail["extensions"][0]["status"] == "approved"


async def test_the_cli_asks_for_and_decides_an_extension_chases_and_closes(stack: Stack, programme: str) -> None:
    aid = assignment_id(programme, 1, "yuzhong")
    year = china_today().year + 1
    asked = ("extension", "request", aid, "--deadline", "acceptance", "--to", f"{year}年3月2日", "--reason", "人员调整")
    r = await run_cli(stack, "department", "yuzhong", *asked)
    assert r.exit_code == 0 and "延期申请第1号已提交" in r.output, r.output
    r = await run_cli(stack, "department", "yuzhong", "extension", "decide", aid, "1", "approve")
    assert r.exit_code == 1 and cli_errors(r)[0].startswith("error: 403"), r.output
    r = await run_cli(stack, "supervisor", None, "extension", "decide", aid, "1", "refuse", "--reason", "理由不充分")
    assert r.exit_code == 0, r.output

    many = ("remind", "--programme", programme, "--unit", "yuzhong", "--message", "请抓紧签收")
    r = await run_cli(stack, "supervisor", None, *many, "--dry-run")
    assert r.exit_code == 0 and "3 open assignments match" in r.output, r.output
    r = await run_cli(stack, "supervisor", None, *many, "--limit", "2")
    assert r.exit_code == 1 and "more than the limit 2" in cli_errors(r)[0], r.output
    r = await run_cli(stack, "supervisor", None, *many)
    assert r.exit_code == 0 and "reminded 3 of 3 assignments" in r.output, r.output
    r = await run_cli(stack, "supervisor", None, "remind", aid, "--message", "请于本周内签收")
    assert r.exit_code == 0, r.output
    r = await run_cli(stack, "supervisor", None, "close", aid, "--reason", "已提前完成")
    assert r.exit_code == 0, r.output

    mine = [e for e in await stream_events(stack.js, aid) if e.actor.role in ("department", "supervisor")]
    said = [(e.type, e.payload.get("reason") or e.payload.get("message")) for e in mine]
    assert said[-5:] == [
        ("ExtensionRequested", "人员调整"),
        ("ExtensionRefused", "理由不充分"),
        ("ManualReminderIssued", "请抓紧签收"),
        ("ManualReminderIssued", "请于本周内签收"),
        ("AssignmentClosed", "已提前完成"),
    ]
