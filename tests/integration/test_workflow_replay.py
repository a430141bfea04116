"""Determinism: the workflow code replays a recorded history, and the histories it makes now.

`histories/assignment_lifecycle.json` is the first run of an assignment that was escalated,
accepted late, had its plan returned, failed and then passed verification, and continued as
new into its second year. It must replay. Record it again (after a deliberate change to the
workflow, with an upgrade note in docs/deploy.md) with

    POLICYFLOW_RECORD_HISTORY=1 uv run pytest tests/integration/test_workflow_replay.py -k record
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from contracts.commands import (
    AcceptAssignment,
    RequestVerification,
    ReviewAnnualPlan,
    VerifyYear,
)
from tests.integration.conftest import (
    SUPERVISOR,
    VERIFIER,
    Handle,
    Kit,
    department,
    independent_add_working_days,
    make_spec,
    plan,
    report,
    send,
    status,
    wait_for_new_run,
)
from tests.support.clock import current_period
from workflows.workflows import AssignmentWorkflow

RECORDED = Path(__file__).parent / "histories" / "assignment_lifecycle.json"
UNIT = "tongnan"


async def eventful_first_year(kit: Kit) -> tuple[Handle, str]:
    """A first year that takes most branches; returns the handle and the first run's id."""
    today = await kit.today()
    if today.month == 12:  # keep the whole first year inside one calendar year
        await kit.sleep_until(dt.date(today.year + 1, 1, 10))
        today = await kit.today()
    year = today.year
    spec = make_spec(UNIT, year, year + 1, evaluation_years=[year])
    h = await kit.start(spec)
    first_run = (await h.describe()).run_id
    assert first_run is not None
    await kit.sleep_until(independent_add_working_days(today, 12))  # reminder and blue for acceptance
    me = department(UNIT)
    await send(h, AcceptAssignment(actor=me, command_id="accept-1"))
    await send(h, AcceptAssignment(actor=me, command_id="accept-1"))
    await send(h, plan(UNIT, year))
    await send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="return", comment="why"))
    await send(h, plan(UNIT, year))
    await send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"))
    period = current_period(await kit.today())
    await send(h, report(UNIT, period, 60))
    await send(h, RequestVerification(actor=me))
    await send(h, VerifyYear(actor=VERIFIER, decision="fail", findings="more"))
    await send(h, RequestVerification(actor=me))
    await send(h, VerifyYear(actor=VERIFIER, decision="pass", score=75))
    await wait_for_new_run(h, first_run)
    assert (await status(h)).year == year + 1
    return h, first_run


def replayer() -> Replayer:
    return Replayer(workflows=[AssignmentWorkflow], data_converter=pydantic_data_converter)


async def test_the_recorded_history_replays() -> None:
    history = WorkflowHistory.from_json("assignment-recorded", RECORDED.read_text())
    types = {e.event_type for e in history.events}
    kinds = {e.WhichOneof("attributes") for e in history.events}
    assert len(history.events) > 50 and len(types) > 10
    assert "activity_task_scheduled_event_attributes" in kinds  # events are published by an activity
    assert "marker_recorded_event_attributes" in kinds  # the calendar, by a local activity
    assert history.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    result = await replayer().replay_workflow(history)
    assert result.replay_failure is None


async def test_fresh_histories_replay(kit: Kit) -> None:
    h, first_run = await eventful_first_year(kit)
    await send(h, plan(UNIT, (await status(h)).year))
    histories = [
        await kit.client.get_workflow_handle(h.id, run_id=first_run).fetch_history(),
        await h.fetch_history(),  # the second run, still open
    ]
    for history in histories:
        result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, result.replay_failure


@pytest.mark.skipif(not os.environ.get("POLICYFLOW_RECORD_HISTORY"), reason="records only on request")
async def test_record(kit: Kit) -> None:
    h, first_run = await eventful_first_year(kit)
    history = await kit.client.get_workflow_handle(h.id, run_id=first_run).fetch_history()
    RECORDED.parent.mkdir(exist_ok=True)
    RECORDED.write_text(history.to_json())
