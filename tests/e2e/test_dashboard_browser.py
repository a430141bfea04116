"""The dashboard in headless Chromium against the real stack: nats-server, Temporal dev server, the
worker, the assignment, progress and audit services over real HTTP.

Scenario (this year's date, whatever it is): a small programme whose acceptance deadline is 25
working days *before* dispatch (DeadlineRules.acceptance_working_days=-25), so every assignment is
escalated red at once, and whose horizon is this year, so a year's verification completes it.
Five units accept (the escalation is cleared), one assignment is cancelled, one is driven through
plan, approval, report and verification to completion, and one stays unaccepted: red.
Then a supervisor logs in through the form, sees the lights, filters, opens the red assignment's
timeline (from the audit ledger); the screenshot is kept in the artefacts directory
(deploy/local/browser.py). The README's picture comes from deploy/local/screenshots.py.

Needs Debian's Chromium at /usr/bin/chromium (no browser is ever downloaded); skips without it, and
fails without it under CI (.ci/run installs it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.catalog import DeadlineRules, Schedule
from contracts.ids import assignment_id
from deploy.local.browser import CHROMIUM, CHROMIUM_ARGS, artefacts, why_not
from services.shared.db import sqlite_url
from tests.e2e.support import Stack, get_json, running_stack, serve, small_programme
from tests.support.clock import china_today
from tests.support.requirements import require
from tests.support.waiting import until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", autouse=True)
def browser_available() -> None:
    """Before the module's stack starts, so it never starts for a test that cannot run."""
    require(why_not())


@dataclass
class Services:
    stack: Stack
    audit_url: str


@pytest.fixture(scope="module")
async def services(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Services]:
    from services.audit.app import create_app as audit_app
    from services.audit.settings import AuditSettings

    tmp = tmp_path_factory.mktemp("browser")
    tq = f"tq-browser-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        async with AsyncExitStack() as exits:
            s = await exits.enter_async_context(running_stack(tmp, nats_url, temporal_client, temporal_address, tq))
            audit = AuditSettings(
                nats_url=nats_url, var_dir=tmp, key_dir=tmp / "keys", database_url=sqlite_url(tmp / "audit.sqlite")
            )
            audit_url = await exits.enter_async_context(serve(audit_app(audit)))
            mp.setenv("POLICYFLOW_AUDIT_URL", audit_url)  # read by the dashboard on its first request
            mp.setenv("TEMPORAL_UI_URL", "http://127.0.0.1:8233")
            yield Services(s, audit_url)


async def drive(services: Services) -> dict[str, str]:
    """Import, dispatch, and play the scenario over HTTP; returns assignment ids by expected light."""
    year = china_today().year
    body = small_programme(start_year=year, horizon=year)
    rules = DeadlineRules(acceptance_working_days=-25)
    body = body.model_copy(update={"schedule": Schedule(start_year=year, rules=rules)})
    pid = body.programme_id
    ids = {
        "red": assignment_id(pid, 2, "wanzhou"),
        "done": assignment_id(pid, 3, "yuzhong"),
        "cancelled": assignment_id(pid, 1, "fgw"),
        "green": assignment_id(pid, 1, "jw"),
    }
    accepting = [
        assignment_id(pid, 1, "jw"),
        assignment_id(pid, 1, "yuzhong"),
        assignment_id(pid, 2, "yuzhong"),
        assignment_id(pid, 3, "jw"),
        ids["done"],
    ]
    stack = services.stack
    sup, ver = stack.headers("supervisor"), stack.headers("verifier")
    a, p = stack.assignment_url, stack.progress_url
    async with httpx.AsyncClient(timeout=30) as c:

        async def ok(url: str, headers: dict[str, str], json: Any = None) -> dict[str, Any]:
            r = await c.post(url, json=json, headers=headers)
            assert r.status_code == 200, f"{url}: {r.status_code} {r.text}"
            return dict(r.json())

        await ok(f"{a}/v1/programmes", stack.headers("admin"), body.model_dump(mode="json"))
        assert (await ok(f"{a}/v1/programmes/{pid}/dispatch", stack.headers("admin")))["started"] == 7

        async def all_red() -> bool:
            page = await get_json(c, f"{p}/v1/status", sup, programme_id=pid, overdue="red")
            return bool(page["total"] == 7)

        await until(all_red, timeout=30)
        for aid in accepting:
            unit = aid.rsplit(".", 1)[1]
            answer = await ok(f"{p}/v1/assignments/{aid}/accept", stack.headers("department", unit))
            assert answer["year"] == year, "the programme's only year ended before its assignments started"
        await ok(f"{p}/v1/assignments/{ids['cancelled']}/cancel", sup, {"reason": "职责调整，改由牵头单位统筹"})

        done, yz = f"{p}/v1/assignments/{ids['done']}", stack.headers("department", "yuzhong")
        plan = {
            "year": year,
            "milestones": [{"title": "完成既有建筑节能改造", "due": f"{year}-12-20"}],
            "indicators": [{"name": "绿色建筑占比", "unit": "%", "target": 70}],
        }
        await ok(f"{done}/plans", yz, plan)
        await ok(f"{done}/plans/{year}/review", sup, {"decision": "approve", "comment": "同意"})
        report = {
            "period": f"{year}-Q1",
            "percent": 100,
            "narrative": "新建建筑中绿色建筑占比达到 72%",
            "indicator_values": [{"name": "绿色建筑占比", "value": 72}],
        }
        files = {"file": ("验收报告.pdf", b"%PDF-1.7\n%%EOF\n")}
        up = await c.post(f"{done}/evidence", files=files, headers=yz)  # a report names only uploaded evidence
        assert up.status_code == 201, up.text
        report["evidence"] = [{k: up.json()[k] for k in ("name", "sha256", "size")}]
        await ok(f"{done}/reports", yz, report)
        await ok(f"{done}/verification-requests", yz, {"note": "年度任务已完成"})
        assert (await ok(f"{done}/verification", ver, {"decision": "pass", "findings": "通过"}))["stage"] == "completed"

        async def settled() -> bool:
            page = await get_json(c, f"{p}/v1/status", sup, programme_id=pid, limit=50)
            by_id = {i["assignment_id"]: i for i in page["items"]}
            return bool(
                by_id[ids["red"]]["overdue_level"] == "red"
                and by_id[ids["done"]]["stage"] == "completed"
                and by_id[ids["cancelled"]]["stage"] == "cancelled"
                and sum(i["overdue_level"] != "none" for i in page["items"]) == 1
            )

        await until(settled, timeout=30)

        async def ledger_has_it() -> bool:
            r = await c.get(f"{services.audit_url}/v1/audit/assignments/{ids['red']}/history", headers=sup)
            return r.status_code == 200 and any(i["type"] == "SupervisionEscalated" for i in r.json()["items"])

        await until(ledger_has_it, timeout=30)
    return {"pid": pid, **ids}


async def test_supervisor_sees_lights_filters_and_a_timeline_in_chromium(services: Services) -> None:
    from playwright.async_api import async_playwright, expect

    ids = await drive(services)
    stack = services.stack
    name, password = await stack.account("supervisor")
    base = stack.progress_url
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page = await context.new_page()
            page.set_default_timeout(10_000)

            # Not signed in: the sign-in form; an HttpOnly SameSite session cookie comes back.
            await page.goto(f"{base}/dashboard?programme_id={ids['pid']}")
            await expect(page.locator("#login-form")).to_be_visible()
            await page.fill("#username", name)
            await page.fill("#password", password)
            await page.click("#login-submit")
            await expect(page.locator("#programme-title")).to_contain_text("测试实施方案")
            cookie = next(c for c in await context.cookies() if c["name"] == "pf_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"

            # One light per assignment, with the expected colours.
            def dot(aid: str) -> Any:
                return page.locator(f'a.light[data-assignment="{aid}"]')

            await expect(page.locator("#overview a.light")).to_have_count(7)
            await expect(dot(ids["red"])).to_have_class("light light-red")
            await expect(dot(ids["done"])).to_have_class("light light-done")
            await expect(dot(ids["cancelled"])).to_have_class("light light-cancelled")
            await expect(dot(ids["green"])).to_have_class("light light-green")
            await expect(page.locator('#overview a.light[data-light="green"]')).to_have_count(4)
            colour = await dot(ids["red"]).evaluate("e => getComputedStyle(e).backgroundColor")
            assert colour == "rgb(229, 57, 53)"
            assert await dot(ids["red"]).get_attribute("title") == "万州区（负责）· 待签收 · 红色督办"
            await expect(page.locator("#kpi-red b")).to_have_text("1")
            await expect(page.locator("#group-1 h3")).to_contain_text("（一）推动城乡建设一体化发展")

            # The year's progress by task group and by month: the bulletin's charts over the overview's rows.
            # Every live assignment was escalated red at dispatch, this month (the cancelled one is left out).
            today = china_today()
            groups = page.locator(
                f'#overview-charts svg#group-chart[aria-label="{today.year} 年各任务组应办事项办理情况"]'
            )
            await expect(groups.locator("g.bar")).to_have_count(2)
            months = page.locator(
                f'#overview-charts svg#month-chart[aria-label="{today.year} 年按月按期办理率与督办次数"]'
            )
            await expect(months.locator("g.month")).to_have_count(today.month)  # the year so far
            red = months.locator(f'g.month[data-month="{today:%Y-%m}"] rect.seg-red')
            await expect(red).to_have_attribute("data-count", "6")
            await page.screenshot(path=str(artefacts() / "dashboard-desktop.png"), full_page=True)

            # At phone width the charts keep their size and scroll sideways in their boxes; the page does not.
            await page.set_viewport_size({"width": 390, "height": 844})
            await expect(groups).to_be_visible()
            await expect(red).to_be_in_viewport()  # the month box opens at the latest months
            assert await page.evaluate("document.documentElement.scrollWidth") <= 391
            assert await page.locator("#figure-months").evaluate("e => e.clientWidth") <= 390
            await page.screenshot(path=str(artefacts() / "dashboard-charts-phone.png"), full_page=True)
            await page.set_viewport_size({"width": 1280, "height": 900})

            # Filter: red only.
            await page.select_option("#filter-overdue", "red")
            await page.click("#filter-submit")
            filtered = f"{base}/dashboard?programme_id={ids['pid']}&group=&unit_id=&stage=&overdue=red"
            await expect(page).to_have_url(filtered)
            await expect(page.locator("#overview a.light")).to_have_count(1)
            await expect(page.locator("#assignment-list tbody tr")).to_have_count(1)

            # Drill down into the red one: its timeline comes from the audit ledger.
            await dot(ids["red"]).click()
            await expect(page.locator("#assignment-title")).to_contain_text("万州区")
            await expect(page.locator("#timeline-source")).to_have_attribute("data-source", "audit")
            types = await page.locator("#timeline li").evaluate_all("els => els.map(e => e.dataset.type)")
            assert types[:2] == ["AssignmentCreated", "SupervisionEscalated"], types
            wf = f"assignment-{ids['red']}"
            href = f"http://127.0.0.1:8233/namespaces/default/workflows/{wf}"
            await expect(page.locator("#temporal-link")).to_have_attribute("href", href)

            # The completed one: its report and the completion in the timeline.
            await page.goto(f"{base}/dashboard/assignments/{ids['done']}")
            await expect(page.locator("#stage")).to_have_attribute("data-stage", "completed")
            await expect(page.locator("#latest-report")).to_contain_text("验收报告.pdf")
            await expect(page.locator('#timeline li[data-type="AssignmentCompleted"]')).to_have_count(1)

            # The ranking with its chart, then log out.
            await page.click("#nav-units")
            await expect(page.locator("svg#unit-chart g.bar")).to_have_count(4)
            await expect(page.locator("#unit-wanzhou td").nth(5)).to_have_text("0%")
            await page.click("#logout")
            await expect(page.locator("#login-form")).to_be_visible()
            assert not [c for c in await context.cookies() if c["name"] == "pf_session"]
        finally:
            await browser.close()
