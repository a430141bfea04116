"""The ranking by 考核 score, the indicators page and every view's export button, in headless Chromium
against the real stack (nats-server, the assignment and progress services over real HTTP), over the
scripted year of tests/support/outcome_year.py published to the stream. Screenshots go to the
artefacts directory (deploy/local/browser.py). Then the charts: the unit × task matrix, the bulletin
page's SVG charts and its PDF button, at desktop and phone width."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from temporalio.client import Client

from deploy.local.browser import CHROMIUM, CHROMIUM_ARGS, artefacts, why_not
from tests.e2e.support import Stack, running_stack
from tests.support import outcome_year as year
from tests.support.publishing import publish
from tests.support.requirements import require
from tests.support.waiting import caught_up

pytestmark = pytest.mark.browser
P = year.PROGRAMME


@pytest.fixture(scope="module", autouse=True)
def browser_available() -> None:
    require(why_not())


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-outb-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("outcomes-browser")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLICYFLOW_AUDIT_URL", "http://127.0.0.1:9")  # nothing listens: not needed here
        async with running_stack(tmp, nats_url, temporal_client, temporal_address, tq, worker=False) as s:
            await year.register(s.db_urls["assignment"])
            await caught_up(s, await publish(s.js, year.events()))
            yield s


async def downloaded(page: Any, selector: str, into: Path, timeout: float | None = None) -> Path:
    async with page.expect_download(timeout=timeout) as info:
        await page.click(selector)
    download = await info.value
    target: Path = into / str(download.suggested_filename)
    await download.save_as(str(target))
    return target


def sheet_rows(path: Path) -> list[list[Any]]:
    [sheet] = openpyxl.load_workbook(path).worksheets
    return [list(r) for r in sheet.iter_rows(values_only=True)]


async def test_ranking_indicators_and_export_buttons_in_chromium(stack: Stack, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    name, password = await stack.account("supervisor")
    base = stack.progress_url
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True
            )
            page = await context.new_page()
            page.set_default_timeout(10_000)
            await page.goto(f"{base}/dashboard?programme_id={P}")
            await page.fill("#username", name)
            await page.fill("#password", password)
            await page.click("#login-submit")
            await expect(page.locator("#programme-title")).to_contain_text("测试方案")

            # The overview's button: every assignment the filters match, as a workbook.
            status = await downloaded(page, "#export-status-xlsx", tmp_path)
            rows = sheet_rows(status)
            assert rows[0][0] == "任务编号" and len(rows) == 1 + 6

            # The ranking: by 考核 score by default; gamma, which accepted nothing, last.
            await page.click("#nav-units")
            await expect(page.locator("#score-note")).to_contain_text("2027 年度")
            order = await page.locator("#ranking tbody tr").evaluate_all("rs => rs.map(r => r.dataset.unit)")
            assert order == ["alpha", "beta", "gamma"]
            scores = await page.locator("#ranking td.score").evaluate_all("cs => cs.map(c => c.dataset.score)")
            assert [float(s) for s in scores] == [84.37, 65.83, 0.0]
            await page.click("#unit-gamma td.score summary")
            await expect(page.locator("#unit-gamma ul.components")).to_contain_text("尚未签收任何任务，不得分")
            await page.screenshot(path=str(artefacts() / "dashboard-ranking-scores.png"), full_page=True)
            rows = sheet_rows(await downloaded(page, "#export-scores-xlsx", tmp_path))
            assert [(r[0], r[1], r[3]) for r in rows[1:]] == [(1, "alpha", 84.37), (2, "beta", 65.83), (3, "gamma", 0)]
            summary = await downloaded(page, "#export-summary-csv", tmp_path)
            text = list(csv.reader(io.StringIO(summary.read_bytes().decode("utf-8-sig"))))
            assert text[0][:2] == ["单位", "单位名称"] and sorted(r[0] for r in text[1:]) == ["alpha", "beta", "gamma"]

            # The indicators page, as of the year's end, and its button.
            await page.click("#nav-indicators")
            await page.fill("#filter-as-of", "2027-12-31")
            await page.click("#filter-submit")
            await expect(page.locator("div.indicator")).to_have_count(4)
            green = page.locator(f"#indicator-{year.GREEN} tr.indicator-year")
            await expect(green).to_have_attribute("data-value", "91.5")
            await expect(page.locator(f"#indicator-{year.WATER} tr.indicator-year td").nth(5)).to_have_text("2 / 3")
            await page.screenshot(path=str(artefacts() / "dashboard-indicators.png"), full_page=True)
            rows = sheet_rows(await downloaded(page, "#export-indicators-xlsx", tmp_path))
            city = {r[0]: r[7] for r in rows[1:] if r[6] == "全市"}
            assert city == {year.GREEN: 91.5, year.WATER: 66.6667, year.RETROFIT: 115, year.FOREST: 55.8}
        finally:
            await browser.close()


async def signed_in(browser: Any, stack: Stack, width: int, height: int) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                        accept_downloads=True)  # fmt: skip
    page = await context.new_page()
    page.set_default_timeout(10_000)
    name, password = await stack.account("supervisor")
    await page.goto(f"{stack.progress_url}/dashboard/login")
    await page.fill("#username", name)
    await page.fill("#password", password)
    await page.click("#login-submit")
    return page


async def svg_texts(page: Any, chart: str) -> list[str]:
    texts: list[str] = await page.locator(f"svg#{chart} text").all_text_contents()
    return texts


async def test_charts_and_the_bulletin_in_chromium_at_desktop_and_phone_width(stack: Stack, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for label, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
                page = await signed_in(browser, stack, width, height)
                # The matrix: one column per unit by kind and name (甲, 乙, 丙 by their characters'
                # order, not by id), a light in each task's row.
                await page.goto(f"{stack.progress_url}/dashboard?programme_id={P}")
                heads = await page.locator("#matrix thead th.unit").evaluate_all("hs => hs.map(h => h.dataset.unit)")
                assert heads == sorted(year.UNITS, key=lambda u: year.NAMES[u])
                await expect(page.locator("#task-14 td.cell a.light")).to_have_count(3)
                await expect(page.locator('#task-28 a.light[data-unit="gamma"]')).to_have_attribute("data-light", "red")
                await expect(page.locator("#group-4 h3")).to_contain_text("推动绿色建筑发展")
                await page.screenshot(path=str(artefacts() / f"dashboard-matrix-{label}.png"), full_page=True)

                # The bulletin page: the PDF's own template, its charts as inline SVG.
                await page.goto(f"{stack.progress_url}/dashboard/bulletin?programme_id={P}&period=2027")
                await expect(page.locator("#bulletin-period")).to_contain_text("2027年度")
                months = await svg_texts(page, "month-chart")
                assert [f"{m}月" for m in range(1, 13)] == [t for t in months if t.endswith("月")]
                rates = page.locator("svg#month-chart circle.rate")
                assert await rates.evaluate_all("cs => cs.map(c => c.dataset.rate)") == ["0.3333", "0.7500", "1.0000",
                                                                                         "0.5000"]  # fmt: skip
                groups = await svg_texts(page, "group-chart")
                assert "（四）推动绿色建筑发展" in groups and "67%" in groups
                indicators = await svg_texts(page, "indicator-chart")
                assert "绿色建筑占比" in indicators and "91.5% / 目标 90" in indicators
                await expect(page.locator('#bulletin-escalated tr[data-unit="gamma"] td').first).to_have_text("丙区")
                await page.screenshot(path=str(artefacts() / f"dashboard-bulletin-{label}.png"), full_page=True)
                if label == "phone":  # the matrix scrolls sideways inside its box, the page does not
                    await page.goto(f"{stack.progress_url}/dashboard?programme_id={P}")
                    wide = await page.evaluate("document.documentElement.scrollWidth")
                    assert wide <= width + 1, wide
                else:
                    # The first PDF of a process loads pango and the fonts: seconds on a loaded machine.
                    saved = await downloaded(page, "#export-bulletin-pdf", tmp_path, timeout=60_000)
                    assert saved.name == f"bulletin-{P}-2027.pdf" and saved.read_bytes().startswith(b"%PDF")
                    await page.goto(f"{stack.progress_url}/dashboard/indicators?programme_id={P}&as_of=2027-12-31")
                    assert "森林覆盖率" in await svg_texts(page, "indicator-chart")
                await page.context.close()
        finally:
            await browser.close()
