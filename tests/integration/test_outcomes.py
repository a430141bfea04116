"""Indicators, scores and exports over the real stack: the scripted year (tests/support/outcome_year.py)
published to JetStream, read from the progress read model, and the same numbers computed from the
audit service's as-of replay of its ledger; the exports hold the JSON answers' rows."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docx
import httpx
import openpyxl
import pypdf
import pypdfium2 as pdfium
import pytest
from temporalio.client import Client
from typer.testing import CliRunner, Result

from contracts.figures import indicators_answer
from contracts.indicators import ProgrammeOutcomes
from contracts.records import Recorded
from contracts.scores import scores_answer
from deploy.local.browser import artefacts
from services.cli.main import app
from services.progress.bulletin import DOCX_TYPE as DOCX
from services.progress.outcomes import as_of_time
from tests.e2e.support import Stack, running_stack, token
from tests.integration.audit_support import Service, running, settings_for
from tests.support import outcome_year as year
from tests.support.publishing import publish
from tests.support.waiting import caught_up

pytestmark = pytest.mark.integration
P = year.PROGRAMME


@pytest.fixture(scope="module")
async def stacks(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[tuple[Stack, Service]]:
    tmp = tmp_path_factory.mktemp("outcomes")
    tq = f"tq-out-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp, nats_url, temporal_client, temporal_address, tq, worker=False) as stack:
        await year.register(stack.db_urls["assignment"])
        (tmp / "audit").mkdir()
        async with running(settings_for(tmp / "audit", nats_url)) as audit:
            events = year.events()
            await caught_up(stack, await publish(stack.js, events))
            await audit.wait_for_size(len(events))
            yield stack, audit


async def get(stack: Stack, path: str, role: str = "supervisor", unit: str | None = None, **params: Any) -> Any:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(f"{stack.progress_url}{path}", headers=stack.headers(role, unit), params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def get_file(stack: Stack, path: str, kind: str, role: str = "supervisor", unit: str | None = None,
                   **params: Any) -> httpx.Response:  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(
            f"{stack.progress_url}{path}", headers=stack.headers(role, unit), params={**params, "format": kind}
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].endswith(f'.{kind}"')
    return r


async def replayed(audit: Service, as_of: str) -> tuple[ProgrammeOutcomes, list[Recorded]]:
    """The declared outcomes and every assignment's state as of `as_of`, from the audit ledger."""
    auth = audit.auth()
    r = await audit.client.get("/v1/audit/events", params={"type": "ProgrammeImported"}, headers=auth)
    [imported] = r.json()["items"]
    outcomes = ProgrammeOutcomes.model_validate(imported["event"]["payload"]["outcomes"])
    moment = as_of_time(as_of)
    assert moment is not None
    r = await audit.client.get("/v1/audit/replay", params={"as_of": moment.isoformat()}, headers=auth)
    assert r.status_code == 200, r.text
    return outcomes, [Recorded.model_validate(s) for s in r.json()["items"]]


@pytest.mark.parametrize("as_of", ["2027-05-31", "2027-12-31"])
async def test_read_model_and_ledger_replay_give_the_same_numbers(stacks: tuple[Stack, Service], as_of: str) -> None:
    stack, audit = stacks
    live_figures = await get(stack, f"/v1/programmes/{P}/indicators", as_of=as_of)
    live_scores = await get(stack, f"/v1/programmes/{P}/scores", year=2027, as_of=as_of)
    # The auditors' routes: the same computations over the ledger's replay.
    r = await audit.client.get(f"/v1/audit/programmes/{P}/indicators", params={"as_of": as_of}, headers=audit.auth())
    assert r.status_code == 200, r.text
    assert r.json() == live_figures
    params: dict[str, Any] = {"as_of": as_of, "year": 2027}
    r = await audit.client.get(f"/v1/audit/programmes/{P}/scores", params=params, headers=audit.auth())
    assert r.status_code == 200, r.text
    assert r.json() == live_scores
    # And by hand from the replayed states, as an auditor with the ledger alone would.
    outcomes, states = await replayed(audit, as_of)
    moment = as_of_time(as_of)
    assert moment is not None
    from_ledger = indicators_answer(P, outcomes, states, moment)
    assert live_figures == json.loads(from_ledger.model_dump_json())
    ranked = scores_answer(P, outcomes.scoring, outcomes.indicators, states, 2027, moment)
    assert live_scores == json.loads(ranked.model_dump_json())


async def test_the_ledgers_figures_before_the_import_and_for_an_unknown_programme(
    stacks: tuple[Stack, Service],
) -> None:
    _, audit = stacks
    auth = audit.auth()
    r = await audit.client.get(f"/v1/audit/programmes/{P}/indicators", params={"as_of": "2026-12-31"}, headers=auth)
    assert r.status_code == 404 and P in r.json()["detail"]
    r = await audit.client.get(f"/v1/audit/programmes/{P}/scores", params={"year": 2027, "as_of": "soon"}, headers=auth)
    assert r.status_code == 422 and "2027-03-31" in r.text
    r = await audit.client.get(f"/v1/audit/programmes/{P}/scores", params={"year": 2027}, headers=auth)
    assert [u["total"] for u in r.json()["units"]] == [84.37, 65.83, 0]


async def test_exact_figures_and_scores_from_the_read_model(stacks: tuple[Stack, Service]) -> None:
    stack, _ = stacks
    body = await get(stack, f"/v1/programmes/{P}/indicators", as_of="2027-12-31")
    city = {i["id"]: i["years"][0]["value"] for i in body["indicators"]}
    assert city == {year.GREEN: 91.5, year.WATER: 66.6667, year.RETROFIT: 115.0, year.FOREST: 55.8}
    body = await get(stack, f"/v1/programmes/{P}/scores", year=2027, as_of="2027-12-31")
    assert [(u["unit_id"], u["rank"], u["total"]) for u in body["units"]] == [
        ("alpha", 1, 84.37), ("beta", 2, 65.83), ("gamma", 3, 0)]  # fmt: skip
    gamma = {c["key"]: c for c in body["units"][2]["components"]}
    assert gamma["acceptance"]["points"] == 0 and body["units"][2]["started"] is False
    # Without as_of: now, which includes everything recorded.
    now = await get(stack, f"/v1/programmes/{P}/scores", year=2027)
    assert [u["total"] for u in now["units"]] == [84.37, 65.83, 0]


async def test_unknown_programme_or_indicator_is_refused_in_words(stacks: tuple[Stack, Service]) -> None:
    stack, _ = stacks
    async with httpx.AsyncClient(timeout=30) as c:
        url = f"{stack.progress_url}/v1/programmes"
        r = await c.get(f"{url}/nope-1/indicators", headers=stack.headers("supervisor"))
        assert r.status_code == 404 and P in r.json()["detail"]
        r = await c.get(f"{url}/{P}/indicators", headers=stack.headers("supervisor"), params={"indicator_id": "xx"})
        assert r.status_code == 404 and "未知指标 xx" in r.json()["detail"] and year.GREEN in r.json()["detail"]
        r = await c.get(f"{url}/{P}/scores", headers=stack.headers("supervisor"), params={"year": 2027, "as_of": "May"})
        assert r.status_code == 422 and "as_of" in r.text


def xlsx_rows(body: bytes) -> tuple[list[str], list[list[Any]], Any]:
    book = openpyxl.load_workbook(io.BytesIO(body))
    [sheet] = book.worksheets
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    return [str(h) for h in rows[0]], rows[1:], sheet


def csv_rows(body: bytes) -> tuple[list[str], list[list[str]]]:
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    return rows[0], rows[1:]


async def test_status_export_holds_every_matching_row_not_a_page(stacks: tuple[Stack, Service]) -> None:
    stack, _ = stacks
    page = await get(stack, "/v1/status", programme_id=P, limit=2)
    assert page["total"] == 6 and len(page["items"]) == 2
    every = await get(stack, "/v1/status", programme_id=P, limit=500)
    r = await get_file(stack, "/v1/status", "xlsx", programme_id=P, limit=2)
    headers, rows, sheet = xlsx_rows(r.content)
    assert headers[:3] == ["任务编号", "方案", "任务序号"] and sheet.freeze_panes == "A2"
    assert [row[0] for row in rows] == [i["assignment_id"] for i in every["items"]]
    due = {row[0]: row[headers.index("下一期限")] for row in rows}
    gamma = next(i for i in every["items"] if i["unit_id"] == "gamma")
    assert due[gamma["assignment_id"]].date().isoformat() == gamma["next_deadline"]["due"]  # a date cell
    assert sheet.column_dimensions["D"].width > 20
    headers, text_rows = csv_rows((await get_file(stack, "/v1/status", "csv", programme_id=P)).content)
    assert [row[0] for row in text_rows] == [i["assignment_id"] for i in every["items"]]
    async with httpx.AsyncClient(timeout=30) as c:  # the Accept header asks for the same file
        accept = {**stack.headers("supervisor"), "Accept": "text/csv"}
        r = await c.get(f"{stack.progress_url}/v1/status", headers=accept, params={"programme_id": P})
        assert r.headers["content-type"].startswith("text/csv") and csv_rows(r.content)[1] == text_rows


async def test_a_departments_exports_hold_only_its_unit(stacks: tuple[Stack, Service]) -> None:
    stack, _ = stacks
    for path, params in [("/v1/status", {}), ("/v1/status/summary", {}), (f"/v1/programmes/{P}/indicators", {}),
                         (f"/v1/programmes/{P}/scores", {"year": 2027})]:  # fmt: skip
        r = await get_file(stack, path, "xlsx", "department", "beta", programme_id=P, **params)
        headers, rows, _ = xlsx_rows(r.content)
        col = headers.index("单位编号") if "单位编号" in headers else 0
        assert rows and {row[col] for row in rows} == {"beta"}, (path, rows)


async def test_summary_indicator_and_score_exports_hold_the_json_rows(stacks: tuple[Stack, Service]) -> None:
    stack, _ = stacks
    summary = await get(stack, "/v1/status/summary", programme_id=P)
    headers, rows, _ = xlsx_rows((await get_file(stack, "/v1/status/summary", "xlsx", programme_id=P)).content)
    assert [(r[0], r[headers.index("任务数")]) for r in rows] == [(i["key"], i["total"]) for i in summary["items"]]

    figures = await get(stack, f"/v1/programmes/{P}/indicators", as_of="2027-12-31")
    expected = []
    for ind in figures["indicators"]:
        for y in ind["years"]:
            expected.append((ind["id"], y["year"], "全市", y["value"]))
            expected += [(ind["id"], y["year"], u["unit_id"], u["value"]) for u in y["units"]]
    r = await get_file(stack, f"/v1/programmes/{P}/indicators", "xlsx", as_of="2027-12-31")
    headers, rows, _ = xlsx_rows(r.content)
    at = [headers.index(h) for h in ("指标编号", "年度", "单位名称", "数值")]
    got = [tuple(row[i] for i in at) for row in rows]
    assert [
        (g[0], g[1], g[2] if g[2] == "全市" else e[2], g[3]) for g, e in zip(got, expected, strict=True)
    ] == expected
    headers, text_rows = csv_rows(
        (await get_file(stack, f"/v1/programmes/{P}/indicators", "csv", as_of="2027-12-31")).content
    )
    assert len(text_rows) == len(expected) and headers[0] == "指标编号"

    scores = await get(stack, f"/v1/programmes/{P}/scores", year=2027, as_of="2027-12-31")
    r = await get_file(stack, f"/v1/programmes/{P}/scores", "xlsx", year=2027, as_of="2027-12-31")
    headers, rows, _ = xlsx_rows(r.content)
    assert [(row[0], row[1], row[3]) for row in rows] == [
        (u["rank"], u["unit_id"], u["total"]) for u in scores["units"]
    ]
    assert "按期签收（得分）" in headers and "督办扣分（说明）" in headers
    headers, text_rows = csv_rows((await get_file(stack, f"/v1/programmes/{P}/scores", "csv", year=2027)).content)
    assert [row[1] for row in text_rows] == ["alpha", "beta", "gamma"]


async def cli(stack: Stack, role: str, unit: str | None, *args: str) -> Result:
    env = {
        "POLICYFLOW_ASSIGNMENT_URL": stack.assignment_url,
        "POLICYFLOW_PROGRESS_URL": stack.progress_url,
        "POLICYFLOW_TOKEN": token(stack.key_dir, role, unit),
        "POLICYFLOW_CONFIG": str(stack.tmp / "no-config.toml"),
    }
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def test_cli_export_writes_the_services_file(stacks: tuple[Stack, Service], tmp_path: Path) -> None:
    stack, _ = stacks
    out = tmp_path / "scores.xlsx"
    r = await cli(stack, "supervisor", None, "export", "scores", P, "--year", "2027", "-o", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["path"] == str(out)
    _, rows, _ = xlsx_rows(out.read_bytes())
    assert [row[1] for row in rows] == ["alpha", "beta", "gamma"]
    out = tmp_path / "status.csv"
    r = await cli(stack, "department", "gamma", "export", "status", "--programme", P, "--format", "csv", "-o", str(out))
    assert r.exit_code == 0, r.output
    _, text_rows = csv_rows(out.read_bytes())
    assert len(text_rows) == 2 and {row[4] for row in text_rows} == {"gamma"}
    r = await cli(stack, "supervisor", None, "export", "indicators", "nope-1", "-o", str(tmp_path / "x.xlsx"))
    assert r.exit_code == 1 and "404" in r.output and not (tmp_path / "x.xlsx").exists()


async def test_a_plan_or_report_naming_an_unknown_indicator_is_refused_naming_the_known(
    stacks: tuple[Stack, Service],
) -> None:
    stack, _ = stacks
    aid = f"{P}.t14.alpha"
    plan = {"year": 2027, "milestones": [{"title": "m", "due": "2027-06-30"}],
            "indicators": [{"id": "green_shares", "name": "绿色建筑", "target": 90}]}  # fmt: skip
    values = [{"id": "retrofit", "name": "改造", "value": 1}, {"id": "nope", "name": "x", "value": 1}]
    report = {"period": "2027-Q3", "percent": 60, "narrative": "进展", "indicator_values": values}
    async with httpx.AsyncClient(timeout=30) as c:
        dept = stack.headers("department", "alpha")
        r = await c.post(f"{stack.progress_url}/v1/assignments/{aid}/plans", headers=dept, json=plan)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert "未知指标 green_shares" in detail and all(i.id in detail for i in year.OUTCOMES.indicators)
        r = await c.post(f"{stack.progress_url}/v1/assignments/{aid}/reports", headers=dept, json=report)
        assert r.status_code == 422 and "未知指标 nope" in r.json()["detail"], r.text


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body)).pages)


async def test_the_bulletin_as_pdf_and_docx_names_the_programme_the_period_and_the_red_units(
    stacks: tuple[Stack, Service], tmp_path: Path
) -> None:
    stack, _ = stacks
    path = f"{stack.progress_url}/v1/programmes/{P}/bulletins"
    async with httpx.AsyncClient(timeout=60) as c:
        r = await c.get(f"{path}/2027", headers=stack.headers("supervisor"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf" and f"bulletin-{P}-2027.pdf" in r.headers[
            "content-disposition"]  # fmt: skip
        text = pdf_text(r.content)
        # The title, the period, gamma (丙区: red on both acceptances) and alpha (甲区: yellow) by name.
        assert "测试方案" in text and "2027年度" in text and "丙区" in text and "甲区" in text, text
        assert "本期发出蓝色督办 0 次、黄色督办 1 次、红色督办 2 次" in text.replace("\n", "")
        # The year's five-year evaluation, opened by the calendar on 1 November: each unit's self-evaluation
        # and the verifiers' score (alpha's 88), gamma listed as not having sent one.
        flat = text.replace("\n", "")
        assert "五、五年评估（2027 年）" in flat and "6 项任务中 2 项已提交自评，1 项已由核验人员评分" in flat, flat
        assert "90 分（第 2 版）" in flat and "88 分" in flat and "未提交" in flat
        assert flat.index("五年评估") < flat.index("甲区", flat.index("五年评估")) < flat.index("88 分")
        # Every page as a picture, in the test artefacts (the first is docs/bulletin.png).
        document = pdfium.PdfDocument(r.content)
        for i in range(len(document)):
            document[i].render(scale=1.5).to_pil().save(artefacts() / f"bulletin-{P}-2027-p{i + 1}.png")
        assert len(document) >= 1

        accept = {**stack.headers("supervisor"), "Accept": DOCX}
        r = await c.get(f"{path}/2027-Q4", headers=accept)
        assert r.status_code == 200 and r.headers["content-type"] == DOCX, r.text
        doc = docx.Document(io.BytesIO(r.content))
        words = "\n".join(p.text for p in doc.paragraphs)
        cells = [cell.text for t in doc.tables for row in t.rows for cell in row.cells]
        assert "测试方案" in words and "2027年第四季度" in words and "丙区" in cells
        # The fourth quarter's bulletin carries the evaluation the calendar opened in it, as the PDF does.
        assert "五、五年评估（2027 年）" in words and "90 分（第 2 版）" in cells and "88 分" in cells
        assert len(doc.inline_shapes) == 3  # the three charts, as pictures

        # A department gets its own unit's bulletin: beta was never escalated, gamma is not in it.
        r = await c.get(f"{path}/2027", headers=stack.headers("department", "beta"))
        assert r.status_code == 200, r.text
        text = pdf_text(r.content)
        assert "乙区" in text and "丙区" not in text and "本期没有单位被红色或黄色督办" in text
        assert "80 分（第 1 版）" in text and "90 分（第 2 版）" not in text

        r = await c.get(f"{path}/2027-Q5", headers=stack.headers("supervisor"))
        assert r.status_code == 422 and "2026-Q4" in r.json()["detail"], r.text
        r = await c.get(f"{path.replace(P, 'nope-1')}/2027", headers=stack.headers("supervisor"))
        assert r.status_code == 404 and P in r.json()["detail"]

    out = tmp_path / "q1.pdf"
    ran = await cli(stack, "supervisor", None, "bulletin", P, "2027-Q1", "-o", str(out), "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["path"] == str(out) and "2027年第一季度" in pdf_text(out.read_bytes())
