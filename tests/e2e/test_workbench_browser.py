"""The unit workbench in headless Chromium against the real stack (nats-server, Temporal dev server,
the worker, the assignment and progress services over real HTTP).

A district (渝中区) signs in with its account, accepts task 1, submits a plan that a supervisor
returns from the same pages, reads the reason, resubmits a revised plan that is approved, reports
with a PDF uploaded through the page, requests verification, reads the verifier's findings after a
fail and reports the rework. The task's lead department (市住房城乡建委) reads the district's report,
opens its evidence and writes the task's summary (汇总). Screenshots at desktop and phone width go
to the artefacts directory (deploy/local/browser.py); the README's picture comes from
deploy/local/screenshots.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.ids import assignment_id
from deploy.local.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, artefacts, why_not
from tests.e2e.support import Stack, running_stack, small_programme
from tests.support.clock import china_today
from tests.support.requirements import require
from tests.support.waiting import until

pytestmark = pytest.mark.browser
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(scope="module", autouse=True)
def browser_available() -> None:
    require(why_not())


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-workbench-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("wb"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


async def dispatched(stack: Stack) -> str:
    year = china_today().year
    body = small_programme(start_year=year, horizon=year + 1)
    admin = stack.headers("admin")
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{stack.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=admin)
        assert r.status_code == 200, r.text
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{body.programme_id}/dispatch", headers=admin)
        assert r.status_code == 200 and r.json()["started"] == 7, r.text
        lead = assignment_id(body.programme_id, 1, "jw")
        jw = stack.headers("department", "jw")
        r = await c.post(f"{stack.progress_url}/v1/assignments/{lead}/accept", headers=jw)
        assert r.status_code == 200, r.text
    return body.programme_id


async def test_a_district_and_its_lead_do_a_year_in_the_workbench(stack: Stack, tmp_path: Path) -> None:
    from playwright.async_api import Page, async_playwright, expect

    pid = await dispatched(stack)
    year = china_today().year
    aid = assignment_id(pid, 1, "yuzhong")
    base, shots = stack.progress_url, artefacts()
    pdf = tmp_path / "验收报告.pdf"
    pdf.write_bytes(PDF)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        async def person(role: str, unit: str | None = None, viewport: Any = DESKTOP) -> Page:
            context = await browser.new_context(viewport=viewport, locale="zh-CN")
            page = await context.new_page()
            page.set_default_timeout(15_000)
            await page.goto(f"{base}/workbench")
            await expect(page.locator("#login-form")).to_be_visible()
            name, password = await stack.account(role, unit)
            await page.fill("#username", name)
            await page.fill("#password", password)
            await page.click("#login-submit")
            await expect(page.locator("#nav-inbox")).to_be_visible()
            return page

        async def shoot(page: Page, name: str) -> None:
            await page.screenshot(path=str(shots / f"workbench-{name}.png"), full_page=True)

        try:
            district = await person("department", "yuzhong", PHONE)
            cards = district.locator("#section-todo li.card")
            await expect(cards).to_have_count(3)
            await expect(cards.first.locator(".next")).to_have_text("下一步：签收任务")
            await shoot(district, "inbox-phone")

            # 签收
            await district.click(f'li[data-assignment="{aid}"] a.title')
            await district.click("#do-accept")
            await expect(district.locator("#done")).to_contain_text("已签收")
            await expect(district.locator("#stage")).to_have_attribute("data-stage", "planning")

            # A plan with a milestone outside the year: refused beside the field, what was typed kept.
            await district.fill("#form-submit_plan input[name=milestone_due_0]", f"{year + 1}-03-31")
            await district.fill("#form-submit_plan input[name=milestone_title_0]", "完成绿色建筑专项规划")
            await district.fill("#form-submit_plan input[name=indicator_name_0]", "新建绿色建筑占比")
            await district.fill("#form-submit_plan input[name=indicator_target_0]", "７０")  # full-width digits
            await district.click("#do-submit_plan")
            refusal = district.locator("#form-submit_plan .field-error")
            await expect(refusal).to_contain_text("节点日期须在计划年度内。")
            await expect(refusal).to_contain_text("outside the plan year")
            await expect(district.locator("#form-submit_plan input[name=milestone_title_0]")).to_have_value(
                "完成绿色建筑专项规划"
            )
            await district.fill("#form-submit_plan input[name=milestone_due_0]", f"{year}-12-20")
            await district.click("#do-submit_plan")
            await expect(district.locator("#done")).to_contain_text("年度计划已提交")

            # The supervisor returns it from the same page, with the reasons.
            supervisor = await person("supervisor")
            await expect(supervisor.locator(f'#section-review li[data-assignment="{aid}"]')).to_have_count(1)
            await supervisor.goto(f"{base}/workbench/assignments/{aid}")
            await supervisor.select_option("#decision", "return")
            await supervisor.click("#do-review_plan")
            await expect(supervisor.locator("#error-comment")).to_contain_text("须写明原因")
            await supervisor.fill("#comment", "指标须细化到季度")
            await supervisor.click("#do-review_plan")
            await expect(supervisor.locator("#done")).to_be_visible()

            # The district sees why, revises the prefilled plan and resubmits; the supervisor approves.
            await district.reload()
            await expect(district.locator("#returned-reasons")).to_have_text("指标须细化到季度")
            await expect(district.locator("#form-submit_plan input[name=indicator_target_0]")).to_have_value("70")
            await district.fill("#form-submit_plan input[name=milestone_due_1]", f"{year}-06-30")
            await district.fill("#form-submit_plan input[name=milestone_title_1]", "一季度完成摸底")
            await district.click("#do-submit_plan")
            await expect(district.locator("#done")).to_contain_text("年度计划已提交")
            await supervisor.goto(f"{base}/workbench/assignments/{aid}")
            await supervisor.select_option("#decision", "approve")
            await supervisor.click("#do-review_plan")
            await expect(supervisor.locator("#done")).to_be_visible()

            # 进展填报 with a PDF uploaded through the page.
            await district.reload()
            await expect(district.locator("#stage")).to_have_attribute("data-stage", "implementing")
            await district.select_option("#period", f"{year}-Q1")
            await district.fill("#percent", "60")
            await district.fill("#narrative", "完成全区新建建筑摸底，绿色建筑占比 68%")
            await district.fill('input[name="value:新建绿色建筑占比"]', "68")
            await district.set_input_files("#evidence", str(pdf))
            await district.click("#do-report_progress")
            await expect(district.locator("#done")).to_contain_text("进展已填报")
            await expect(district.locator("#reports .evidence-link")).to_have_text("验收报告.pdf")

            # 申请核验; the verifier fails it with findings; the district sees them.
            await district.click("#do-request_verification")
            await expect(district.locator("#stage")).to_have_attribute("data-stage", "verifying")
            verifier = await person("verifier")
            await verifier.goto(f"{base}/workbench/assignments/{aid}")
            await verifier.select_option("#verify-decision", "fail")
            await verifier.fill("#findings", "佐证材料缺少竣工验收备案表")
            await verifier.click("#do-verify")
            await expect(verifier.locator("#done")).to_be_visible()
            await district.reload()
            await expect(district.locator("#findings-text")).to_have_text("佐证材料缺少竣工验收备案表")
            await shoot(district, "assignment-phone")

            # Rework: a new report.
            await district.select_option("#period", f"{year}-Q1")
            await district.fill("#percent", "80")
            await district.fill("#narrative", "补充竣工验收备案表")
            await district.click("#do-report_progress")
            await expect(district.locator("#done")).to_contain_text("进展已填报")

            # The lead department reads the district's report and evidence, and writes the summary.
            lead = await person("department", "jw")
            await expect(lead.locator("#led a")).to_have_count(2)
            item = lead.locator(f'#lead-items li[data-assignment="{aid}"]')

            async def rework_shown() -> bool:  # the lead's page reads the read model, which follows the event
                await lead.goto(f"{base}/workbench/lead/{pid}/1")
                return "补充竣工验收备案表" in (await item.text_content() or "")

            await until(rework_shown, "the district's new report on the lead's task page")
            await lead.goto(f"{base}/workbench/assignments/{aid}")
            async with lead.expect_download() as download:
                await lead.locator("#reports .evidence-link").first.click()
            saved = tmp_path / "downloaded.pdf"
            await (await download.value).save_as(saved)
            assert saved.read_bytes() == PDF
            await lead.goto(f"{base}/workbench/lead/{pid}/1")
            await lead.click("#write-summary")
            await lead.fill("#summary-text", "渝中区已完成摸底，正在补充验收材料。")
            await lead.click("#do-submit_summary")
            await expect(lead.locator("#done")).to_contain_text("年度汇总已提交")

            async def summary_shown() -> bool:  # the page reads the read model, which follows the event
                await lead.goto(f"{base}/workbench/lead/{pid}/1")
                return await lead.locator("#lead-summary-text").count() == 1

            await until(summary_shown, "the lead's summary on its task page")
            await expect(lead.locator("#lead-summary-text")).to_have_text("渝中区已完成摸底，正在补充验收材料。")
            await shoot(lead, "lead-desktop")
            await district.set_viewport_size(DESKTOP)
            await shoot(district, "assignment-desktop")

            # A mistyped id: not found, with the ids meant.
            response = await district.goto(f"{base}/workbench/assignments/{aid[:-2]}gn")
            assert response is not None and response.status == 404
            await expect(district.locator("#error-message")).to_contain_text(f"您要找的是不是：{aid}")

            # Another district may not open this assignment.
            other = await person("department", "wanzhou")
            response = await other.goto(f"{base}/workbench/assignments/{aid}")
            assert response is not None and response.status == 403
            await expect(other.locator("#error-message")).to_contain_text("不是它的责任单位")
        finally:
            await browser.close()
