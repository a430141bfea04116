"""Two `python -m workflows.worker` processes on one task queue share the assignments.

Both poll the same queue on the Temporal dev server; once both are polling, 40 assignments
start. Every workflow publishes its AssignmentCreated exactly once, and the histories'
WorkflowTaskStarted identities show that both processes carried workflows.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle

from contracts.ids import workflow_id
from tests.integration.conftest import make_spec, read_stream
from tests.support.clock import china_today
from tests.support.processes import spawn, stopped_after
from tests.support.waiting import until
from workflows.models import AssignmentInput
from workflows.workflows import AssignmentWorkflow

ASSIGNMENTS = 40
IDENTITIES = ("worker-a", "worker-b")


@pytest.fixture
def workers(
    nats_url: str, temporal_address: str, task_queue: str, tmp_path: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    with stopped_after() as procs:
        for identity in IDENTITIES:
            env = dict(os.environ)
            env.update(
                NATS_URL=nats_url, TEMPORAL_ADDRESS=temporal_address, TEMPORAL_NAMESPACE="default",
                TASK_QUEUE=task_queue, WORKER_IDENTITY=identity, LOG_LEVEL="WARNING",
            )  # fmt: skip
            procs.append(spawn("workflows.worker", env, tmp_path / f"{identity}.log"))
        yield procs


async def pollers(client: Client, task_queue: str) -> set[str]:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    response = await client.workflow_service.describe_task_queue(request)
    return {p.identity for p in response.pollers}


async def test_two_worker_processes_share_one_task_queue(
    temporal_client: Client,
    jetstream: JetStreamContext,
    task_queue: str,
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    async def both_polling() -> bool:
        assert all(p.poll() is None for p in workers), (tmp_path / "worker-a.log").read_text()[-2000:]
        return set(IDENTITIES) <= await pollers(temporal_client, task_queue)

    await until(both_polling, "both workers polling", 60)

    prefix = f"w{uuid.uuid4().hex[:6]}"
    year = china_today().year
    specs = [make_spec(f"{prefix}u{i:02d}", year, year + 4, task_no=1 + i % 30) for i in range(ASSIGNMENTS)]
    handles: list[WorkflowHandle[AssignmentWorkflow, object]] = await asyncio.gather(
        *(
            temporal_client.start_workflow(
                AssignmentWorkflow.run, AssignmentInput(spec=s), id=workflow_id(s.assignment_id), task_queue=task_queue
            )
            for s in specs
        )
    )
    try:
        wanted = {s.assignment_id for s in specs}

        async def all_created() -> bool:
            created = {e.assignment_id for e in await read_stream(jetstream) if e.type == "AssignmentCreated"}
            return wanted <= created

        await until(all_created, f"{ASSIGNMENTS} AssignmentCreated events", 60)
        events = [e for e in await read_stream(jetstream) if e.assignment_id in wanted]
        assert len(events) == len({e.event_id for e in events})  # nothing published twice

        first_task: Counter[str] = Counter()
        any_task: Counter[str] = Counter()
        for h in handles:
            started = [
                e.workflow_task_started_event_attributes.identity
                for e in (await h.fetch_history()).events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
            ]
            first_task[started[0]] += 1
            any_task.update(started)
        print(f"first workflow task per worker: {dict(first_task)}; all workflow tasks: {dict(any_task)}")
        assert set(first_task) == set(IDENTITIES), first_task  # each process started some assignments
        assert sum(first_task.values()) == ASSIGNMENTS
    finally:
        await asyncio.gather(*(h.terminate(reason="test over") for h in handles), return_exceptions=True)
