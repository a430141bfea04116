"""kill -9 of the worker process mid-lifecycle: a new worker takes over and the lifecycle finishes.

Real processes (`python -m workflows.worker`) against the Temporal dev server and nats-server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nats.js import JetStreamContext
from temporalio.client import Client

from contracts.commands import AcceptAssignment, RequestVerification, ReviewAnnualPlan, VerifyYear
from contracts.ids import workflow_id
from tests.integration.conftest import (
    SUPERVISOR,
    VERIFIER,
    department,
    make_spec,
    plan,
    read_stream,
    report,
    send,
)
from tests.support.clock import china_today, current_period
from workflows.models import AssignmentInput
from workflows.workflows import AssignmentWorkflow

ROOT = Path(__file__).resolve().parents[2]


def spawn_worker(log: Path, nats_url: str, temporal_address: str, task_queue: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NATS_URL=nats_url, TEMPORAL_ADDRESS=temporal_address, TASK_QUEUE=task_queue)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workflows.worker"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while b"worker_started" not in log.read_bytes():
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "worker did not start"
        time.sleep(0.05)
    return proc


async def test_a_killed_worker_is_replaced_and_the_lifecycle_finishes(
    temporal_client: Client,
    temporal_address: str,
    nats_url: str,
    jetstream: JetStreamContext,
    task_queue: str,
    tmp_path: Path,
) -> None:
    today = china_today()
    year = today.year
    unit = f"k{os.getpid()}{int(time.time()) % 100000}"
    spec = make_spec(unit, year, year)
    me = department(unit)
    first = spawn_worker(tmp_path / "worker-1.log", nats_url, temporal_address, task_queue)
    h = await temporal_client.start_workflow(
        AssignmentWorkflow.run,
        AssignmentInput(spec=spec, linger=dt.timedelta(0)),
        id=workflow_id(spec.assignment_id),
        task_queue=task_queue,
    )
    await send(h, AcceptAssignment(actor=me))
    await send(h, plan(unit, year))

    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    # Sent while no worker runs: it waits for one.
    review = asyncio.create_task(send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve")))
    await asyncio.sleep(0.5)
    assert not review.done()
    second = spawn_worker(tmp_path / "worker-2.log", nats_url, temporal_address, task_queue)
    try:
        assert (await asyncio.wait_for(review, 60)).stage == "implementing"
        await send(h, report(unit, current_period(today), 100))
        await send(h, RequestVerification(actor=me))
        await send(h, VerifyYear(actor=VERIFIER, decision="pass"))
        final = await asyncio.wait_for(h.result(), 30)
        assert final.stage == "completed"
    finally:
        second.send_signal(signal.SIGTERM)  # graceful: finishes and exits cleanly
        assert second.wait(20) == 0, (tmp_path / "worker-2.log").read_text()[-2000:]

    events = await read_stream(jetstream, spec.assignment_id)
    assert [e.seq for e in events] == list(range(len(events)))
    assert len({e.event_id for e in events}) == len(events) == final.last_seq + 1
    assert [e.type for e in events] == [
        "AssignmentCreated",
        "AssignmentAccepted",
        "AnnualPlanSubmitted",
        "AnnualPlanApproved",
        "ProgressReported",
        "VerificationRequested",
        "VerificationPassed",
        "AssignmentCompleted",
    ]
    assert b'"event_published"' in (tmp_path / "worker-2.log").read_bytes()  # JSON log lines

    # The workflow kept its search attributes up to date on the way (visibility is eventually consistent).
    query = f'PolicyflowUnit = "{unit}" AND PolicyflowStage = "completed" AND PolicyflowYear = {year}'
    for _ in range(100):
        if (await temporal_client.count_workflows(query)).count == 1:
            break
        await asyncio.sleep(0.1)
    assert (await temporal_client.count_workflows(query)).count == 1
