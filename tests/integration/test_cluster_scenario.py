"""A policyflow scenario on a 3-node NATS JetStream cluster (replicas=3): kill -9 a node mid-way.

Real workflows on the Temporal dev server, a worker publishing their events, the audit service
ledgering them, all connected to the three nodes. A follower is killed with SIGKILL, commands
go on while it is away, it comes back; then the same with the stream's leader. After each,
every event the workflows emitted is in the stream once and in the ledger once, the chain
verifies, and the restarted replica has caught up.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from temporalio.client import Client, WorkflowHandle

from contracts.base import UserRole
from contracts.commands import AcceptAssignment, ReviewAnnualPlan
from contracts.events import event_id
from contracts.ids import workflow_id
from contracts.subjects import EVENT_STREAM
from deploy.local.servers import Server, nats_cluster
from services.shared.streams import ensure_event_stream
from tests.integration.audit_support import Service, running, settings_for
from tests.integration.conftest import SUPERVISOR, department, make_spec, plan, read_stream, send
from tests.support.clock import china_today
from tests.support.waiting import until
from workflows.activities import EventPublisher
from workflows.models import AssignmentInput, AssignmentStatus
from workflows.worker import build_worker
from workflows.workflows import AssignmentWorkflow

ASSIGNMENTS = 8
Handle = WorkflowHandle[AssignmentWorkflow, AssignmentStatus]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Server]]:
    nodes = nats_cluster(tmp_path / "nats")
    for node in nodes:
        node.start()
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture
async def js(cluster: list[Server]) -> AsyncIterator[JetStreamContext]:
    """A client of all three nodes, as the worker and services are with NATS_URL listing them."""
    nc = await nats.connect(
        servers=urls(cluster), reconnect_time_wait=0.2, max_reconnect_attempts=-1, name="policyflow-worker"
    )
    yield nc.jetstream()
    await nc.close()


def urls(nodes: list[Server]) -> list[str]:
    return [f"nats://127.0.0.1:{n.port}" for n in nodes]


async def a_follower(js: JetStreamContext, nodes: list[Server]) -> Server:
    info = await js.stream_info(EVENT_STREAM)
    leader = info.cluster.leader if info.cluster else None
    return next(n for n in nodes if n.name != f"nats-{leader}")


async def the_leader(js: JetStreamContext, nodes: list[Server]) -> Server:
    info = await js.stream_info(EVENT_STREAM)
    assert info.cluster and info.cluster.leader
    return next(n for n in nodes if n.name == f"nats-{info.cluster.leader}")


async def stream_ids(js: JetStreamContext) -> Counter[str]:
    """Each event id in the stream, with how often it is there (read message by message)."""
    return Counter(e.event_id for e in await read_stream(js))


async def replicas_current(js: JetStreamContext) -> bool:
    info = await js.stream_info(EVENT_STREAM)
    peers = info.cluster.replicas if info.cluster and info.cluster.replicas else []
    return len(peers) == 2 and all(p.current and not p.offline and not p.lag for p in peers)


async def expected_ids(handles: list[Handle]) -> set[str]:
    """Every event the workflows emitted so far, once each has published all of them."""
    ids: set[str] = set()
    for h in handles:
        st = await h.query(AssignmentWorkflow.status)
        assert st.unpublished_events == 0
        ids |= {event_id(st.assignment_id, seq) for seq in range(st.last_seq + 1)}
    return ids


async def assert_complete(audit: Service, js: JetStreamContext, expected: set[str]) -> None:
    """The ledger and the stream each hold every expected event exactly once; the chain verifies."""

    async def ledgered() -> bool:
        return bool((await audit.client.get("/healthz")).json()["ledger_size"] >= len(expected))

    await until(ledgered, f"{len(expected)} events in the ledger")
    auth = audit.auth(UserRole.AUDITOR)
    r = await audit.client.get("/v1/audit/events", headers={**auth, "Accept": "application/x-ndjson"})
    ledger = [json.loads(line)["event_id"] for line in r.text.splitlines()]
    assert len(ledger) == len(set(ledger)) == len(expected) and set(ledger) == expected  # complete, once each
    verdict = (await audit.client.get("/v1/audit/verify", headers=auth)).json()
    assert verdict["ok"] is True and verdict["count"] == len(expected), verdict
    in_stream = await until(lambda: stream_ids(js), "reading the stream")
    assert set(in_stream) == expected and set(in_stream.values()) == {1}  # nothing lost, nothing twice
    await until(lambda: replicas_current(js), "the restarted replica caught up")


async def test_a_scenario_survives_kill_9_of_a_follower_then_of_the_leader(
    cluster: list[Server], js: JetStreamContext, temporal_client: Client, tmp_path: Path
) -> None:
    # A stream made with one copy (as on a single server) is raised to three by the worker's
    # start-up with NATS_REPLICAS=3.
    await ensure_event_stream(js, replicas=1)
    assert (await js.stream_info(EVENT_STREAM)).config.num_replicas == 1
    await ensure_event_stream(js, replicas=3)
    await until(lambda: replicas_current(js), "three current replicas")
    await ensure_event_stream(js, replicas=1)  # never lowered
    assert (await js.stream_info(EVENT_STREAM)).config.num_replicas == 3
    tq = f"tq-cluster-{uuid.uuid4().hex[:8]}"
    audit_settings = settings_for(tmp_path / "audit", ",".join(urls(cluster)), checkpoint_every=0, batch_size=50)
    prefix = f"c{uuid.uuid4().hex[:6]}"
    year = china_today().year
    specs = [make_spec(f"{prefix}u{i}", year, year + 4, task_no=1 + i) for i in range(ASSIGNMENTS)]
    handles: list[Handle] = []
    # A shorter publish ack timeout than production's 5 s: a publish to the killed leader gives up
    # (and the activity retries, same Nats-Msg-Id) sooner. Nothing else differs.
    publisher = EventPublisher(js, ack_timeout=2.0)
    async with build_worker(temporal_client, js, tq, publisher=publisher), running(audit_settings) as audit:
        handles = list(
            await asyncio.gather(
                *(
                    temporal_client.start_workflow(
                        AssignmentWorkflow.run, AssignmentInput(spec=s), id=workflow_id(s.assignment_id), task_queue=tq
                    )
                    for s in specs
                )
            )
        )
        try:
            await asyncio.gather(
                *(send(h, AcceptAssignment(actor=department(s.unit_id))) for h, s in zip(handles, specs, strict=True))
            )
            years = [(await h.query(AssignmentWorkflow.status)).year for h in handles]

            follower = await a_follower(js, cluster)
            follower.kill()  # kill -9, mid-scenario
            # Commands go on while the node is away; each returns once its event is acknowledged.
            await asyncio.gather(*(send(h, plan(s.unit_id, y)) for h, s, y in zip(handles, specs, years, strict=True)))
            follower.start()
            await assert_complete(audit, js, await expected_ids(handles))

            leader = await the_leader(js, cluster)
            leader.kill()  # the same with the stream's leader: a new one is elected meanwhile
            await asyncio.gather(
                *(
                    send(
                        h,
                        ReviewAnnualPlan(actor=SUPERVISOR, year=y, decision="approve", comment="同意"),
                    )
                    for h, y in zip(handles, years, strict=True)
                )
            )
            leader.start()
            expected = await expected_ids(handles)
            await assert_complete(audit, js, expected)
            stages = {(await h.query(AssignmentWorkflow.status)).stage.value for h in handles}
            assert stages == {"implementing"}
        finally:
            await asyncio.gather(*(h.terminate(reason="test over") for h in handles), return_exceptions=True)
    print(f"kill -9 of a follower, then the leader: {len(expected)} events of {ASSIGNMENTS} workflows, each once")
