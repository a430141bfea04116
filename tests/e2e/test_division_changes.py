"""Changes to a running division over HTTP, on the real stack: reassignment (转办), an added unit and
a revised division (dry run, then apply), with every refusal's reason, the status counts after,
and the ledger and audit replay keeping what a removed assignment reported.

In the small programme 市住房城乡建委 (jw) leads tasks 1 and 3, 市发展改革委 (fgw) cooperates on
task 1, 渝中区 (yuzhong) delivers tasks 1, 2, 3 and 万州区 (wanzhou) task 2.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from typer.testing import CliRunner, Result

from contracts.api import ProgrammeImport
from contracts.base import Role
from contracts.catalog import Responsibility, Task
from contracts.ids import assignment_id
from services.cli.main import app
from tests.e2e.support import Stack, running_stack, small_programme, stream_events, token
from tests.integration.audit_support import running, settings_for
from tests.support.clock import china_today, current_period
from tests.support.waiting import until


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-changes-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("changes"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


class Api:
    """The two services as a supervisor or a unit calls them."""

    def __init__(self, stack: Stack, c: httpx.AsyncClient) -> None:
        self.stack, self.c = stack, c
        self.sup = stack.headers("supervisor")
        self.admin = stack.headers("admin")

    def unit(self, unit_id: str) -> dict[str, str]:
        return self.stack.headers("department", unit_id)

    async def start(self, body: ProgrammeImport) -> None:
        a = self.stack.assignment_url
        r = await self.c.post(f"{a}/v1/programmes", json=body.model_dump(mode="json"), headers=self.admin)
        assert r.status_code == 200, r.text
        r = await self.c.post(f"{a}/v1/programmes/{body.programme_id}/dispatch", headers=self.admin)
        assert r.status_code == 200, r.text

    async def cmd(self, aid: str, path: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
        return await self.c.post(f"{self.stack.progress_url}/v1/assignments/{aid}{path}", json=body, headers=headers)

    async def ok(self, aid: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
        r = await self.cmd(aid, path, headers, body)
        assert r.status_code == 200, r.text
        return r.json()

    async def detail(self, aid: str) -> Any:
        r = await self.c.get(f"{self.stack.progress_url}/v1/assignments/{aid}", headers=self.sup)
        assert r.status_code == 200, r.text
        return r.json()

    async def implementing_with_a_report(self, aid: str, unit: str, year: int) -> None:
        await self.ok(aid, "/accept", self.unit(unit))
        plan = {"year": year, "milestones": [{"title": "完成年度目标", "due": f"{year}-12-20"}]}
        await self.ok(aid, "/plans", self.unit(unit), plan)
        await self.ok(aid, f"/plans/{year}/review", self.sup, {"decision": "approve"})
        report = {"period": current_period(china_today()), "percent": 30, "narrative": "开展调研"}
        await self.ok(aid, "/reports", self.unit(unit), report)

    async def reassign(self, aid: str, headers: dict[str, str], **body: Any) -> httpx.Response:
        url = f"{self.stack.assignment_url}/v1/assignments/{aid}/reassign"
        return await self.c.post(url, json=body, headers=headers)

    async def revise(self, body: ProgrammeImport, **more: Any) -> httpx.Response:
        url = f"{self.stack.assignment_url}/v1/programmes/{body.programme_id}/revisions"
        return await self.c.post(url, json={"programme": body.model_dump(mode="json"), **more}, headers=self.admin)


async def test_a_reassignment_keeps_the_old_history_and_continues_on_the_new_unit(stack: Stack) -> None:
    year = china_today().year
    body = small_programme(start_year=year, horizon=year + 1)
    pid = body.programme_id
    old, new = assignment_id(pid, 2, "yuzhong"), assignment_id(pid, 2, "fgw")
    async with httpx.AsyncClient(timeout=60) as c:
        api = Api(stack, c)
        await api.start(body)
        await api.implementing_with_a_report(old, "yuzhong", year)

        r = await api.reassign(old, api.unit("yuzhong"), to_unit="fgw", reason="职能调整")
        assert r.status_code == 403, r.text
        r = await api.reassign(old, api.sup, to_unit="fgw2", reason="职能调整")
        assert r.status_code == 422 and "to_unit: unknown unit 'fgw2' (did you mean fgw?)" in r.json()["detail"]
        r = await api.reassign(old, api.sup, to_unit="wanzhou", reason="职能调整")
        assert r.status_code == 409 and r.json()["detail"] == f"unit wanzhou already has task 2 ({pid}.t02.wanzhou)"

        r = await api.reassign(old, api.sup, to_unit="fgw", reason="职能调整")
        assert r.status_code == 200, r.text
        expected = {"assignment_id": old, "reassigned_to": new, "to_unit": "fgw", "starts": "implementing"}
        assert r.json() | {"event_ids": []} == {**expected, "event_ids": [], "leads_updated": []}
        before, after = await api.detail(old), await api.detail(new)
        assert before["stage"] == "cancelled" and before["counts"]["reports"] == 1
        assert before["closed_reason"] == f"转办至 fgw（{new}）：职能调整"
        assert before["reassigned_to"]["to_assignment_id"] == new
        assert (
            after["reassigned_from"]["from_assignment_id"] == old and after["reassigned_from"]["reason"] == "职能调整"
        )
        assert (after["unit_id"], after["stage"], after["plan"]["status"]) == ("fgw", "implementing", "approved")
        async with httpx.AsyncClient(base_url=stack.progress_url, timeout=30) as pages:
            page = (await pages.get(f"/workbench/assignments/{old}", headers=api.unit("yuzhong"))).text
            assert 'id="reassigned-to"' in page and "职能调整" in page and f"/workbench/assignments/{new}" not in page
            page = (await pages.get(f"/workbench/assignments/{new}", headers=api.unit("fgw"))).text
            assert 'id="reassigned-from"' in page and "职能调整" in page and f"/workbench/assignments/{old}" not in page
            page = (await pages.get(f"/workbench/assignments/{old}", headers=api.sup)).text
            assert f'href="/workbench/assignments/{new}"' in page
        r = await api.reassign(old, api.sup, to_unit="jw", reason="再次转办")
        assert r.status_code == 409 and r.json()["detail"] == (
            f"assignment {old} is closed (转办至 fgw：职能调整); it continues as {new}"
        )
        r = await api.cmd(old, "/reports", api.unit("yuzhong"), {"period": current_period(china_today()),
                                                                  "percent": 50, "narrative": "继续"})  # fmt: skip
        assert r.status_code == 409 and f"assignment {old} is cancelled (转办至 fgw" in r.json()["detail"]
        r = await api.cmd(old, "/reports", api.unit("fgw"), {"period": current_period(china_today()),
                                                              "percent": 50, "narrative": "继续"})  # fmt: skip
        assert r.status_code == 403  # the old assignment stays yuzhong's: fgw acts on its own
        report = {"period": current_period(china_today()), "percent": 60, "narrative": "接手后推进"}
        await api.ok(new, "/reports", api.unit("fgw"), report)

        # Back to 渝中区: a new assignment id (a generation), never the old one; its unit comes from the record.
        again = f"{old}.g2"
        r = await api.reassign(new, api.sup, to_unit="yuzhong", reason="调整回原单位", carry_plan=False)
        assert r.status_code == 200 and (r.json()["reassigned_to"], r.json()["starts"]) == (again, "accepted")
        assert (await api.detail(again))["stage"] == "planning"
        plan = {"year": year, "milestones": [{"title": "重新编制", "due": f"{year}-12-21"}]}
        assert (await api.ok(again, "/plans", api.unit("yuzhong"), plan))["stage"] == "plan_submitted"
        assert (await api.cmd(again, "/plans", api.unit("fgw"), plan)).status_code == 403

        # The lead of task 1 moves: the cooperating unit's running workflow learns its new lead.
        lead_old, lead_new = assignment_id(pid, 1, "jw"), assignment_id(pid, 1, "wanzhou")
        r = await api.reassign(lead_old, api.sup, to_unit="wanzhou", reason="牵头单位调整")
        assert r.status_code == 200 and r.json()["leads_updated"] == [assignment_id(pid, 1, "fgw")]
        assert (await api.detail(assignment_id(pid, 1, "fgw")))["lead_assignment_id"] == lead_new
        assert (await api.detail(lead_new))["stage"] == "assigned"  # jw had not accepted: nothing to carry

        async def linked_on_the_dashboard() -> bool:  # the page reads the read model, moments behind
            page = await c.get(f"{stack.progress_url}/dashboard/assignments/{old}", headers=api.sup)
            return f'<a href="/dashboard/assignments/{new}">{new}</a>（职能调整）' in page.text

        await until(linked_on_the_dashboard, "the dashboard's link to the new assignment", timeout=30)

        history = await stream_events(stack.js, old)
        types = [e.type for e in history]
        assert types[-1] == "AssignmentReassigned" and "ProgressReported" in types
        created = (await stream_events(stack.js, new))[0]
        assert created.type == "AssignmentCreated" and created.payload["handover"]["from_assignment_id"] == old


def revised(body: ProgrammeImport) -> ProgrammeImport:
    """Task 4 added (渝中区 delivers it), 万州区 off task 2, 渝中区 cooperating instead of responsible on
    task 1, and 市发展改革委 cooperating on task 3."""
    groups = list(body.programme.groups)
    groups[1] = groups[1].model_copy(update={"tasks": [*groups[1].tasks, Task(no=4, title="推进建筑节能",
                                                                               text="推进建筑节能。")]})  # fmt: skip
    lines = [r for r in body.division.responsibilities if (r.task_no, r.unit_id) != (2, "wanzhou")]
    lines = [r.model_copy(update={"role": Role.COOPERATING}) if (r.task_no, r.unit_id) == (1, "yuzhong") else r
             for r in lines]  # fmt: skip
    h = lines[0].horizon_year
    lines += [Responsibility(task_no=4, unit_id="yuzhong", role=Role.RESPONSIBLE, horizon_year=h),
              Responsibility(task_no=3, unit_id="fgw", role=Role.COOPERATING, horizon_year=h)]  # fmt: skip
    return body.model_copy(update={
        "programme": body.programme.model_copy(update={"groups": groups}),
        "division": body.division.model_copy(update={"responsibilities": lines}),
    })  # fmt: skip


async def test_a_revised_division_dry_run_then_apply(stack: Stack, nats_url: str) -> None:
    year = china_today().year
    body = small_programme(start_year=year, horizon=year + 1)
    pid = body.programme_id
    removed = assignment_id(pid, 2, "wanzhou")
    async with httpx.AsyncClient(timeout=60) as c:
        api = Api(stack, c)
        await api.start(body)
        await api.implementing_with_a_report(removed, "wanzhou", year)
        new_body = revised(body)

        async def dry_run() -> Any:
            r = await api.revise(new_body)
            assert r.status_code == 200, r.text
            return r.json()

        async def reports_known() -> bool:  # the assignment service's inbox has folded the report
            return bool((await dry_run())["removed_with_reports"])

        await until(reports_known, "the removed assignment's report in the inbox", timeout=30)
        first = await dry_run()
        assert first["state"] == "dry_run" and first["revision"] == 1
        assert sorted(a["assignment_id"] for a in first["added"]) == [f"{pid}.t03.fgw", f"{pid}.t04.yuzhong"]
        assert [a["assignment_id"] for a in first["removed"]] == [removed]
        [changed] = first["changed"]
        assert (changed["before"]["role"], changed["after"]["role"]) == ("responsible", "cooperating")
        assert first["removed_with_reports"] == [{"assignment_id": removed, "unit_id": "wanzhou", "reports": 1}]

        # A unit added to a task on its own is a revision too, which makes the first dry run stale.
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{pid}/tasks/3/units",
                         json={"unit_id": "fgw", "reason": "增加配合单位"}, headers=api.admin)  # fmt: skip
        assert r.status_code == 200 and (r.json()["state"], r.json()["revision"]) == ("done", 1), r.text
        assert (await api.detail(f"{pid}.t03.fgw"))["lead_assignment_id"] == f"{pid}.t03.jw"
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{pid}/tasks/3/units",
                         json={"unit_id": "fgw", "reason": "again"}, headers=api.admin)  # fmt: skip
        assert r.status_code == 409 and r.json()["detail"] == "unit fgw already has task 3"
        r = await api.revise(new_body, dry_run=False, version=first["version"], force=True)
        assert r.status_code == 409 and r.json()["detail"].startswith("the division changed since that dry run")

        second = await dry_run()
        assert (second["revision"], [a["assignment_id"] for a in second["added"]]) == (2, [f"{pid}.t04.yuzhong"])
        r = await api.revise(new_body, dry_run=False, version=second["version"], reason="清单修订")
        assert r.status_code == 409 and r.json()["detail"] == (
            f"the revision removes 1 assignment(s) with progress reports: {removed} (1 reports); "
            "apply with force to remove them (their reports stay in the ledger)"
        )
        sup_only = await c.post(f"{stack.assignment_url}/v1/programmes/{pid}/revisions", headers=api.unit("jw"),
                                json={"programme": new_body.model_dump(mode="json")})  # fmt: skip
        assert sup_only.status_code == 403
        r = await api.revise(new_body, dry_run=False, version=second["version"], force=True, reason="清单修订")
        assert r.status_code == 200 and (r.json()["state"], r.json()["revision"]) == ("done", 2), r.text
        assert (await api.revise(new_body)).json()["state"] == "unchanged"

        gone = await api.detail(removed)
        assert (gone["stage"], gone["closed_reason"], gone["counts"]["reports"]) == (
            "cancelled", "removed in revision 2", 1)  # fmt: skip
        role = await api.detail(assignment_id(pid, 1, "yuzhong"))
        assert (role["role"], role["lead_assignment_id"], role["revision"]) == ("cooperating", f"{pid}.t01.jw", 2)
        assert (await api.detail(f"{pid}.t04.yuzhong"))["revision"] == 2

        async def counts() -> Any:
            r = await c.get(f"{stack.progress_url}/v1/status/summary", params={"programme_id": pid, "by": "unit"},
                            headers={**api.sup, "Cache-Control": "no-cache"})  # fmt: skip
            items = {i["key"]: (i["total"], i["cancelled"]) for i in r.json()["items"]}
            return items if items.get("yuzhong") == (4, 0) and items.get("wanzhou") == (1, 1) else None

        by_unit = await until(counts, "the status counts after the revision", timeout=30)
        assert by_unit == {"jw": (2, 0), "fgw": (2, 0), "yuzhong": (4, 0), "wanzhou": (1, 1)}

        programme_events = [e for e in await stream_events(stack.js) if e.programme_id == pid and not e.assignment_id]
        assert [(e.type, e.event_id) for e in programme_events] == [
            ("ProgrammeImported", f"programme:{pid}#000000"),
            ("ProgrammeRevised", f"programme:{pid}#000001"),
            ("ProgrammeRevised", f"programme:{pid}#000002"),
        ]
        assert [x["assignment_id"] for x in programme_events[2].payload["removed"]] == [removed]

        published = len(await stream_events(stack.js))
        async with running(settings_for(stack.tmp, nats_url)) as audit:
            await audit.wait_for_size(published, timeout=30)
            r = await audit.client.get(f"/v1/audit/assignments/{removed}/history", headers=audit.auth())
            assert r.status_code == 200, r.text
            lines = [(i["type"], i["summary"]) for i in r.json()["items"]]
            assert ("AssignmentRemoved", "清单第 2 次修订移除本任务 / removed in revision 2") in lines
            assert [t for t, _ in lines].count("ProgressReported") == 1
            r = await audit.client.get("/v1/audit/replay", params={"as_of": "2100-01-01T00:00:00Z"},
                                       headers=audit.auth())  # fmt: skip
            [state] = [s for s in r.json()["items"] if s["assignment_id"] == removed]
            assert (state["stage"], state["reports"], state["cancel_reason"]) == (
                "cancelled",
                1,
                "removed in revision 2",
            )


async def test_the_cli_shows_a_revision_and_applies_it_only_when_asked(stack: Stack, tmp_path: Path) -> None:
    year = china_today().year
    body = small_programme(start_year=year, horizon=year + 1)
    pid = body.programme_id
    env = {
        "POLICYFLOW_ASSIGNMENT_URL": stack.assignment_url,
        "POLICYFLOW_PROGRESS_URL": stack.progress_url,
        "POLICYFLOW_TOKEN": token(stack.key_dir, "admin"),
        "POLICYFLOW_CONFIG": str(tmp_path / "no-config.toml"),
        "COLUMNS": "200",
    }

    async def cli(*args: str) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)

    first, second = tmp_path / "programme.json", tmp_path / "revised.json"
    first.write_text(body.model_dump_json(), encoding="utf-8")
    lines = [r for r in body.division.responsibilities if (r.task_no, r.unit_id) != (2, "wanzhou")]
    revised_body = body.model_copy(update={"division": body.division.model_copy(update={"responsibilities": lines})})
    second.write_text(revised_body.model_dump_json(), encoding="utf-8")
    async with httpx.AsyncClient(timeout=60) as c:
        assert (await cli("programme", "import", str(first))).exit_code == 0
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{pid}/dispatch", headers=stack.headers("admin"))
        assert r.status_code == 200, r.text

        shown = await cli("programme", "import", str(second))
        assert shown.exit_code == 0, shown.output
        assert "- removed" in shown.output and f"{pid}.t02.wanzhou" in shown.output
        assert "nothing applied; run again with --apply" in shown.output
        r = await c.get(f"{stack.progress_url}/v1/assignments/{pid}.t02.wanzhou", headers=stack.headers("supervisor"))
        assert r.json()["stage"] == "assigned"

        applied = await cli("programme", "import", str(second), "--apply")
        assert applied.exit_code == 0 and "revision 1 applied" in applied.output, applied.output
        r = await c.get(f"{stack.progress_url}/v1/assignments/{pid}.t02.wanzhou", headers=stack.headers("supervisor"))
        assert (r.json()["stage"], r.json()["closed_reason"]) == ("cancelled", "removed in revision 1")
        again = await cli("programme", "import", str(second))
        assert "already is this one: nothing to change" in again.output

        env["POLICYFLOW_TOKEN"] = token(stack.key_dir, "supervisor")  # reassignment is a supervisor's
        moved = await cli("reassign", f"{pid}.t03.yuzhong", "--to", "wanzhou", "--reason", "属地调整")
        assert moved.exit_code == 0 and f"{pid}.t03.yuzhong → {pid}.t03.wanzhou (wanzhou)" in moved.output
        refused = await cli("reassign", f"{pid}.t03.yuzhong", "--to", "fgw", "--reason", "再次")
        assert refused.exit_code == 1 and "is closed (转办至 wanzhou：属地调整)" in refused.output
