"""Indicators through the whole stack: a programme imported with its indicators (the programme
workflow publishes them in ProgrammeImported), a district's plan naming one by id with its own
target, its reports' values (over the API, then the workbench form), and the figures and score from
the read model; an unknown id refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.base import Role
from contracts.ids import assignment_id
from contracts.indicators import IndicatorSpec, ProgrammeOutcomes
from tests.e2e.support import Stack, get_json, running_stack, small_programme
from tests.support.clock import china_today
from tests.support.waiting import until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-outj-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("outj"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


async def test_a_plans_target_and_a_reports_value_reach_the_figures(stack: Stack) -> None:
    year = china_today().year
    spec = IndicatorSpec(id="green_share", name="绿色建筑占比", measure="%", tasks=[3], roles=[Role.RESPONSIBLE],
                         aggregation="mean", targets={year: 70}, goal_year=2025, goal=100)  # fmt: skip
    body = small_programme(start_year=year, horizon=year + 1)
    body = body.model_copy(update={"outcomes": ProgrammeOutcomes(indicators=[spec])})
    pid, aid = body.programme_id, assignment_id(body.programme_id, 3, "yuzhong")
    sup, yz = stack.headers("supervisor"), stack.headers("department", "yuzhong")
    a, p = stack.assignment_url, stack.progress_url
    async with httpx.AsyncClient(timeout=30) as c:

        async def post(url: str, headers: dict[str, str], json: Any = None, status: int = 200) -> Any:
            r = await c.post(url, json=json, headers=headers)
            assert r.status_code == status, f"{url}: {r.status_code} {r.text}"
            return r.json()

        await post(f"{a}/v1/programmes", stack.headers("admin"), body.model_dump(mode="json"))
        await post(f"{a}/v1/programmes/{pid}/dispatch", stack.headers("admin"))

        async def listed() -> bool:
            r = await c.get(f"{p}/v1/programmes/{pid}/indicators", headers=sup)
            return r.status_code == 200 and (await get_json(c, f"{p}/v1/status", sup, programme_id=pid))["total"] == 7

        await until(listed, timeout=30)
        accepted = await post(f"{p}/v1/assignments/{aid}/accept", yz)
        plan_year = accepted["year"]
        plan = {"year": plan_year, "milestones": [{"title": "完成评估", "due": f"{plan_year}-12-20"}],
                "indicators": [{"id": "green_shar", "name": "绿色建筑占比", "target": 75}]}  # fmt: skip
        refused = await post(f"{p}/v1/assignments/{aid}/plans", yz, plan, status=422)
        assert "green_share（绿色建筑占比）" in refused["detail"]
        plan["indicators"] = [{"id": "green_share", "name": "绿色建筑占比", "unit": "%", "target": 75}]
        await post(f"{p}/v1/assignments/{aid}/plans", yz, plan)
        await post(f"{p}/v1/assignments/{aid}/plans/{plan_year}/review", sup, {"decision": "approve"})
        report = {"period": f"{plan_year}-Q1", "percent": 40, "narrative": "新建建筑绿色建筑占比 72%",
                  "indicator_values": [{"id": "green_share", "name": "绿色建筑占比", "value": 72}]}  # fmt: skip
        await post(f"{p}/v1/assignments/{aid}/reports", yz, report)

        async def figures() -> dict[str, Any] | None:
            answer = await get_json(c, f"{p}/v1/programmes/{pid}/indicators", sup)
            years = {y["year"]: y for y in answer["indicators"][0]["years"]}
            got = years.get(plan_year)
            return got if got and got["units_reporting"] == 1 else None

        await until(figures, timeout=30)
        got = await figures()
        assert got is not None
        mine = {u["unit_id"]: u for u in got["units"]}["yuzhong"]
        assert (got["value"], got["units_total"], mine["value"], mine["target"], mine["met"]) == (72, 1, 72, 75, False)
        # The workbench's report form names the value by the plan's target's name: the id goes with it.
        form = {"period": f"{plan_year}-Q2", "percent": "60", "narrative": "进展", "value:绿色建筑占比": "76"}
        r = await c.post(f"{p}/workbench/assignments/{aid}/report_progress", data=form, headers=yz)
        assert r.status_code == 303, r.text

        async def met() -> bool:
            figures = await get_json(c, f"{p}/v1/programmes/{pid}/indicators", sup)
            [unit] = [y for y in figures["indicators"][0]["years"] if y["year"] == plan_year][0]["units"]
            return bool(unit["value"] == 76 and unit["met"] is True and unit["period"] == f"{plan_year}-Q2")

        await until(met, timeout=30)
        scores = await get_json(c, f"{p}/v1/programmes/{pid}/scores", yz, year=plan_year)
        [own] = scores["units"]  # a department sees its own row
        indicators = {x["key"]: x for x in own["components"]}["indicators"]
        assert own["unit_id"] == "yuzhong" and own["started"] and indicators["detail"] == "达标 1 / 目标 1"
