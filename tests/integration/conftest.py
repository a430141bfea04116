"""Fixtures for the assignment workflow tests: a fresh time-skipping server, JetStream, a kit.

The time-skipping server's clock starts at the real present and only moves forward, so each
test gets its own server (it starts in ~0.1s) and computes its dates from the server's clock
(never from the session-wide `time_skipping_env`, whose clock earlier tests have moved).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import holidays
import nats
import pytest
from nats.js import JetStreamContext
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.base import Actor, Role, UserRole
from contracts.catalog import Schedule
from contracts.command_table import BY_COMMAND
from contracts.commands import AssignmentSpec, Command, CommandResult, ReportProgress, SubmitAnnualPlan
from contracts.events import Event, IndicatorTarget, IndicatorValue, Milestone
from contracts.ids import assignment_id, workflow_id
from contracts.subjects import EVENT_STREAM
from deploy.local.servers import find_binary
from tests.support.notify import Mailbox, Receiver, smtp_server, webhook_receiver
from workflows.activities import EventPublisher
from workflows.calendar import SHANGHAI, shanghai_date, start_of_day
from workflows.models import AssignmentInput, AssignmentStatus
from workflows.worker import build_worker
from workflows.workflows import AssignmentWorkflow

PROGRAMME = "cq-2022-79"
SUPERVISOR = Actor(sub="sup-1", role=UserRole.SUPERVISOR)
VERIFIER = Actor(sub="ver-1", role=UserRole.VERIFIER)
AUDITOR = Actor(sub="aud-1", role=UserRole.AUDITOR)
SEARCH_ATTRIBUTES = {
    "PolicyflowProgramme": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "PolicyflowTaskNo": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "PolicyflowUnit": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "PolicyflowStage": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "PolicyflowYear": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "PolicyflowOverdue": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


def department(unit: str) -> Actor:
    return Actor(sub=f"{unit}-clerk", role=UserRole.DEPARTMENT, unit_id=unit)


def make_spec(
    unit: str,
    start_year: int,
    horizon_year: int,
    task_no: int = 14,
    role: Role = Role.LEAD,
    lead: str | None = None,
    evaluation_years: list[int] | None = None,
) -> AssignmentSpec:
    return AssignmentSpec(
        programme_id=PROGRAMME,
        assignment_id=assignment_id(PROGRAMME, task_no, unit),
        task_no=task_no,
        task_title="推动城乡建设绿色发展",
        unit_id=unit,
        role=role,
        horizon_year=horizon_year,
        lead_assignment_id=lead,
        schedule=Schedule(start_year=start_year, evaluation_years=evaluation_years or []),
    )


_CN = holidays.country_holidays("CN", years=range(2024, 2040))


def is_cn_working_day(day: dt.date) -> bool:
    return bool(_CN.is_working_day(day))


def independent_add_working_days(day: dt.date, n: int) -> dt.date:
    """A second, naive implementation straight on `holidays`, to check the workflow's dates."""
    step = 1 if n > 0 else -1
    while n:
        day += dt.timedelta(days=step)
        if _CN.is_working_day(day):
            n -= step
    return day


async def read_stream(js: JetStreamContext, assignment: str | None = None) -> list[Event]:
    """Every message in the event stream, in stream order (optionally one assignment's)."""
    info = await js.stream_info(EVENT_STREAM)
    out: list[Event] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
        msg = await js.get_msg(EVENT_STREAM, seq)
        assert msg.data is not None
        event = Event.model_validate_json(msg.data)
        assert msg.headers is not None and msg.headers.get("Nats-Msg-Id") == event.event_id
        if assignment is None or event.assignment_id == assignment:
            out.append(event)
    return out


Handle = WorkflowHandle[AssignmentWorkflow, AssignmentStatus]
INDICATOR = "green building share of new buildings"


def plan(actor_unit: str, year: int) -> SubmitAnnualPlan:
    return SubmitAnnualPlan(
        actor=department(actor_unit),
        year=year,
        milestones=[Milestone(title="retrofit 3 districts", due=dt.date(year, 6, 30))],
        indicators=[IndicatorTarget(name=INDICATOR, unit="%", target=70)],
    )


def report(actor_unit: str, period: str, percent: float) -> ReportProgress:
    return ReportProgress(
        actor=department(actor_unit),
        period=period,
        percent=percent,
        narrative=f"{period}: on track",
        indicator_values=[IndicatorValue(name=INDICATOR, value=percent * 0.7)],
    )


async def send(h: Handle, cmd: Command) -> CommandResult:
    """A command as the progress service sends it: the update its command-table row names."""
    result: CommandResult = await h.execute_update(BY_COMMAND[type(cmd)].name, cmd, result_type=CommandResult)
    return result


async def status(h: Handle) -> AssignmentStatus:
    return await h.query(AssignmentWorkflow.status)


async def wait_for_new_run(h: Handle, previous: str | None) -> str:
    """After a year boundary, the assignment continues as a new run: wait until it is the latest."""
    for _ in range(200):
        d = await h.describe()
        if d.run_id != previous and d.status is not None and d.status.name == "RUNNING":
            return d.run_id
        await asyncio.sleep(0.02)
    raise AssertionError("no new run")


async def idle(h: Handle) -> AssignmentStatus:
    """Wait until the workflow has published everything and sleeps (its history stops growing)."""
    last = -1
    for _ in range(200):
        s = await status(h)
        size = len((await h.fetch_history()).events)
        if s.last_seq >= 0 and s.unpublished_events == 0 and s.next_wake is not None and size == last:
            return s
        last = size
        await asyncio.sleep(0.02)
    raise AssertionError("the workflow did not settle")


def of_type(events: list[Event], *types: str) -> list[Event]:
    return [e for e in events if e.type in types]


def day_of(e: Event) -> dt.date:
    return shanghai_date(e.occurred_at)


@dataclass
class Kit:
    """What a workflow test needs: a client, JetStream, a worker's task queue, the clock."""

    client: Client
    js: JetStreamContext
    task_queue: str
    env: WorkflowEnvironment | None = None
    handles: dict[str, WorkflowHandle[Any, Any]] = field(default_factory=dict)

    async def start(self, spec: AssignmentSpec, **options: Any) -> WorkflowHandle[AssignmentWorkflow, AssignmentStatus]:
        handle = await self.client.start_workflow(
            AssignmentWorkflow.run,
            AssignmentInput(spec=spec, **options),
            id=workflow_id(spec.assignment_id),
            task_queue=self.task_queue,
        )
        # Its run id is None, so updates and queries follow the assignment across continue-as-new;
        # and on the time-skipping server only this handle's result() lets time skip.
        assert handle.run_id is None
        self.handles[spec.assignment_id] = handle
        return handle

    async def now(self) -> dt.datetime:
        assert self.env is not None
        return (await self.env.get_current_time()).astimezone(SHANGHAI)

    async def today(self) -> dt.date:
        return (await self.now()).date()

    async def sleep_until(self, day: dt.date, hour: int = 10) -> None:
        """Advance the test server's clock to `hour` o'clock (China) on `day`, firing timers."""
        assert self.env is not None
        target = start_of_day(day) + dt.timedelta(hours=hour)
        delta = target - await self.now()
        assert delta > dt.timedelta(0), f"{day} is in the test server's past"
        await self.env.sleep(delta)

    async def events(self, assignment: str | None = None) -> list[Event]:
        return await read_stream(self.js, assignment)


@pytest.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    # The test server accepts search attribute registration, so the workflow upserts them as in production.
    request = AddSearchAttributesRequest(namespace=env.client.namespace, search_attributes=SEARCH_ATTRIBUTES)
    await env.client.operator_service.add_search_attributes(request)
    # POLICYFLOW_TEST_CLOCK=2027-09-29 runs these tests as if started on that day (China time).
    if start := os.environ.get("POLICYFLOW_TEST_CLOCK"):
        await env.sleep(
            start_of_day(dt.date.fromisoformat(start)) + dt.timedelta(hours=10) - await env.get_current_time()
        )
    yield env
    await env.shutdown()


@pytest.fixture
async def jetstream(nats_url: str, event_stream: str) -> AsyncIterator[JetStreamContext]:
    """A client of a fresh event stream."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.stream_info(event_stream)
    yield js
    await nc.close()


@pytest.fixture
async def kit(ts_env: WorkflowEnvironment, jetstream: JetStreamContext, task_queue: str) -> AsyncIterator[Kit]:
    """A worker on the time-skipping server, publishing to the real nats-server."""
    async with build_worker(ts_env.client, jetstream, task_queue):
        yield Kit(ts_env.client, jetstream, task_queue, ts_env)


def worker_with(kit: Kit, publisher: EventPublisher) -> Worker:
    return build_worker(kit.client, kit.js, kit.task_queue, publisher=publisher)


def unique_unit(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def dev_kit(temporal_client: Client, jetstream: JetStreamContext, task_queue: str) -> AsyncIterator[Kit]:
    """A worker on the real Temporal dev server (session-wide: use unique unit ids)."""
    async with build_worker(temporal_client, jetstream, task_queue):
        yield Kit(temporal_client, jetstream, task_queue)


@pytest.fixture
async def parts() -> AsyncIterator[tuple[Mailbox, int, Receiver]]:
    """The notifier tests' real SMTP server and webhook receiver."""
    with smtp_server() as (box, port):
        async with webhook_receiver() as receiver:
            yield box, port, receiver
