"""Replay at "now" from the audit ledger equals the live workflow status of every assignment.

Real workflows (time-skipping Temporal server, the real worker) publish to a real nats-server;
the audit service ingests the stream; its replay must agree with each workflow's own state.
"""

from __future__ import annotations

from pathlib import Path

from contracts.commands import AcceptAssignment, ReviewAnnualPlan
from contracts.fold import AssignmentState
from tests.integration.audit_support import running, settings_for
from tests.integration.conftest import SUPERVISOR, Kit, department, idle, make_spec, plan, report, send
from tests.support.clock import current_period


async def test_replay_now_equals_live_workflow_status(tmp_path: Path, nats_url: str, kit: Kit) -> None:
    year = (await kit.today()).year
    handles = {}
    for task_no, unit in [(14, "yuzhong"), (14, "jiangbei"), (3, "wanzhou")]:
        h = await kit.start(make_spec(unit, year, year + 1, task_no=task_no))
        handles[unit] = h
        await send(h, AcceptAssignment(actor=department(unit)))
    # Different points of the lifecycle: planning, plan returned, implementing with a report.
    for unit in ("jiangbei", "wanzhou"):
        await send(handles[unit], plan(unit, year))
    decision = ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="return", comment="targets need baselines")
    await send(handles["jiangbei"], decision)
    approve = ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve")
    await send(handles["wanzhou"], approve)
    period = current_period(await kit.today())
    await send(handles["wanzhou"], report("wanzhou", period, 40.0))
    live = {unit: await idle(h) for unit, h in handles.items()}
    published = len(await kit.events())

    async with running(settings_for(tmp_path, nats_url)) as svc:
        await svc.wait_for_size(published)
        now = (await kit.now()).isoformat()
        r = await svc.client.get("/v1/audit/replay", params={"as_of": now}, headers=svc.auth())
        assert r.status_code == 200, r.text
        replayed = {s["unit_id"]: AssignmentState.model_validate(s) for s in r.json()["items"]}
        verdict = (await svc.client.get("/v1/audit/verify", headers=svc.auth())).json()
    assert verdict["ok"] is True and verdict["count"] == published
    assert set(replayed) == set(live)
    fields = set(AssignmentState.model_fields)
    for unit, status in live.items():
        assert replayed[unit] == AssignmentState.model_validate(status.model_dump(include=fields)), unit
    assert replayed["wanzhou"].percent == 40.0 and replayed["jiangbei"].plans_returned == 1
