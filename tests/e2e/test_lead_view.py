"""The lead unit's view over HTTP (/v1/lead/tasks) and its summary (汇总), on the real stack.

In the small programme 市住房城乡建委 (jw) leads tasks 1 and 3; 市发展改革委 (fgw) cooperates on
task 1 and 渝中区 (yuzhong) delivers it locally.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.ids import assignment_id
from tests.e2e.support import Stack, running_stack, small_programme
from tests.support.clock import china_today
from tests.support.waiting import until


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-lead-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("lead"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


async def test_a_lead_sees_its_tasks_and_writes_the_summary_others_may_not(stack: Stack) -> None:
    year = china_today().year
    body = small_programme(start_year=year, horizon=year + 1)
    pid, p = body.programme_id, stack.progress_url
    sup, jw, fgw, yz = (
        stack.headers("supervisor"),
        stack.headers("department", "jw"),
        stack.headers("department", "fgw"),
        stack.headers("department", "yuzhong"),
    )
    lead_aid = assignment_id(pid, 1, "jw")
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(
            f"{stack.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=stack.headers("admin")
        )
        assert r.status_code == 200, r.text
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{pid}/dispatch", headers=stack.headers("admin"))
        assert r.status_code == 200, r.text

        async def tasks(headers: dict[str, str], **params: Any) -> Any:
            r = await c.get(f"{p}/v1/lead/tasks", headers=headers, params=params)
            assert r.status_code == 200, r.text
            return [t for t in r.json() if t["programme_id"] == pid]

        async def all_in_read_model() -> bool:
            return bool(sum(t["assignments"] for t in await tasks(sup)) == 5)

        await until(all_in_read_model, timeout=30)
        led = await tasks(jw)
        assert [(t["task_no"], t["lead_unit_ids"], t["assignments"]) for t in led] == [(1, ["jw"], 3), (3, ["jw"], 2)]
        assert led[0]["by_stage"] == {"assigned": 3} and led[0]["summary"] is None
        assert await tasks(yz) == []
        r = await c.get(f"{p}/v1/lead/tasks", headers=jw, params={"unit_id": "fgw"})
        assert r.status_code == 403 and "may not list the tasks unit fgw leads" in r.json()["detail"]

        r = await c.get(f"{p}/v1/lead/tasks/{pid}/1", headers=jw)
        assert r.status_code == 200, r.text
        assert [i["unit_id"] for i in r.json()["items"]] == ["jw", "fgw", "yuzhong"]
        r = await c.get(f"{p}/v1/lead/tasks/{pid}/1", headers=yz)
        assert r.status_code == 403 and r.json()["detail"] == (
            f"task 1 of {pid} is led by jw; unit yuzhong does not lead it"
        )
        assert (await c.get(f"{p}/v1/lead/tasks/{pid}/1", headers=stack.headers("auditor"))).status_code == 200
        r = await c.get(f"{p}/v1/lead/tasks/{pid}/99", headers=sup)
        assert r.status_code == 404 and r.json()["detail"] == f"no task 99 in programme {pid}"

        summary = {"year": year, "text": "三个单位均已签收，正在编制计划。"}
        r = await c.post(f"{p}/v1/assignments/{lead_aid}/summaries", json=summary, headers=jw)
        assert r.status_code == 409 and "accept the assignment before" in r.json()["detail"]
        for unit, headers in (("jw", jw), ("fgw", fgw)):
            r = await c.post(f"{p}/v1/assignments/{assignment_id(pid, 1, unit)}/accept", headers=headers)
            assert r.status_code == 200, r.text
        r = await c.post(f"{p}/v1/assignments/{assignment_id(pid, 1, 'fgw')}/summaries", json=summary, headers=fgw)
        assert r.status_code == 409 and "only the task's lead unit writes its summary" in r.json()["detail"]
        r = await c.post(f"{p}/v1/assignments/{lead_aid}/summaries", json=summary, headers=jw)
        assert r.status_code == 200, r.text
        assert r.json()["event_ids"] == [f"{lead_aid}#000002"]
        again = {**summary, "text": "修订：三个单位均已签收。"}
        assert (await c.post(f"{p}/v1/assignments/{lead_aid}/summaries", json=again, headers=jw)).status_code == 200

        async def supervisor_sees_it() -> bool:
            [task1] = [t for t in await tasks(sup, unit_id="jw") if t["task_no"] == 1]
            return bool(task1["summary"] and task1["summary"]["revision"] == 2)

        await until(supervisor_sees_it, timeout=30)
        [task1] = [t for t in await tasks(sup, unit_id="jw") if t["task_no"] == 1]
        assert task1["summary"]["text"] == "修订：三个单位均已签收。" and task1["summary"]["year"] == year
        live = (await c.get(f"{p}/v1/assignments/{lead_aid}", headers=jw)).json()
        assert live["summary"]["text"] == "修订：三个单位均已签收。"
