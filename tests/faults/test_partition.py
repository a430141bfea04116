"""A network partition in the 3-node NATS cluster: the stream leader cut off from the majority
while commands flow, then healed.

Each node runs in its own network namespace (tests/support/partition.py); the cut takes the
leader's route link off its bridge, so it no longer hears the other two nodes while clients
still reach it. Two workers poll one task queue: one connected only to the node that is cut
off, one only to a node of the majority, so publishes go to both sides. The audit service
reads from all three nodes. Every round cuts the stream's leader of the moment while each
assignment sends reports, waits for a new leader and for commands to complete during the
partition, then heals. Afterwards: every event a publish was acknowledged for, and every event
the workflows emitted, is in the stream once and in the ledger once, and the chain verifies.

Short form: one round. `FAULTS_ROUNDS=N`: N rounds, twice the assignments.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from temporalio.client import Client, WorkflowHandle

from contracts.commands import AcceptAssignment, ReviewAnnualPlan
from contracts.ids import workflow_id
from contracts.subjects import EVENT_STREAM
from deploy.local.servers import Server
from services.shared.streams import ensure_event_stream
from tests.faults.harness import rounds
from tests.integration.audit_support import running, settings_for
from tests.integration.conftest import SUPERVISOR, department, make_spec, plan, report, send
from tests.integration.test_cluster_scenario import assert_complete, expected_ids
from tests.support.clock import china_today
from tests.support.partition import PartitionableCluster, why_not
from tests.support.requirements import require
from tests.support.waiting import until
from workflows.activities import EventPublisher
from workflows.models import AssignmentInput, AssignmentStatus
from workflows.worker import build_worker
from workflows.workflows import AssignmentWorkflow

Handle = WorkflowHandle[AssignmentWorkflow, AssignmentStatus]
ROUNDS = rounds()
ASSIGNMENTS = 6 if ROUNDS == 1 else 12
REPORTS_PER_ROUND = 3


@dataclass
class Acks:
    """What one worker's JetStream connection was told: each acknowledged event id, and refusals."""

    ids: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    during_cut: int = 0  # acks received over it while its node was the one cut off
    during_cut_duplicates: int = 0  # of which "duplicate" (the id already stored)


@dataclass
class Cut:
    node: Server | None = None  # the node cut off from the others now, if any


class TwoSidedJetStream:
    """The worker's JetStream: each publish over the next of two connections, noting its acks."""

    def __init__(
        self, sides: dict[str, JetStreamContext], nodes: dict[str, Server], acks: dict[str, Acks], cut: Cut
    ) -> None:
        self._sides, self.nodes, self.acks, self._cut = list(sides.items()), nodes, acks, cut
        self._turn = 0

    async def publish(self, subject: str, payload: bytes, **kw: Any) -> Any:
        side, js = self._sides[self._turn % len(self._sides)]
        self._turn += 1
        try:
            ack = await js.publish(subject, payload, **kw)
        except Exception:
            self.acks[side].failed += 1
            raise
        self.acks[side].ids[kw["headers"]["Nats-Msg-Id"]] += 1
        if self._cut.node is self.nodes[side]:
            self.acks[side].during_cut += 1
            self.acks[side].during_cut_duplicates += bool(ack.duplicate)
        return ack


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PartitionableCluster]:
    require(why_not())
    nodes = PartitionableCluster(tmp_path / "nats")
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.close()


async def connected(urls: list[str], name: str) -> NatsClient:
    return await nats.connect(servers=urls, reconnect_time_wait=0.2, max_reconnect_attempts=-1, name=name)


@pytest.fixture
async def clients(cluster: PartitionableCluster) -> AsyncIterator[dict[str, Any]]:
    every = await connected(cluster.urls(), "policyflow-test")
    js = every.jetstream()

    async def made() -> bool:
        await ensure_event_stream(js, replicas=3, wait=5.0)
        return await replicas_current(js)

    await until(made, "the stream on three current nodes", 90)
    leader = await the_leader(cluster, js)
    majority = next(n for n in cluster.nodes if n is not leader)
    conns = {
        "every": every,
        "cut_side": await connected(cluster.urls([leader]), "policyflow-worker-a"),
        "majority": await connected(cluster.urls([majority]), "policyflow-worker-b"),
    }
    yield {**conns, "nodes": {"cut_side": leader, "majority": majority}}
    for nc in conns.values():
        await nc.close()


async def the_leader(cluster: PartitionableCluster, js: JetStreamContext, not_: Server | None = None) -> Server:
    """The stream's leader as a node of the majority sees it (another than `not_`, once elected)."""

    async def elected() -> Server | None:
        info = await js.stream_info(EVENT_STREAM)
        name = info.cluster.leader if info.cluster else None
        node = cluster.node_named(name) if name else None
        return node if node is not None and node is not not_ else None

    found: Server = await until(elected, "a stream leader", 60)
    return found


async def replicas_current(js: JetStreamContext) -> bool:
    info = await js.stream_info(EVENT_STREAM)
    peers = info.cluster.replicas if info.cluster and info.cluster.replicas else []
    return len(peers) == 2 and all(p.current and not p.offline for p in peers)


async def test_the_leader_cut_off_while_commands_flow_loses_nothing_and_doubles_nothing(
    cluster: PartitionableCluster, clients: dict[str, Any], temporal_client: Client, tmp_path: Path
) -> None:
    every = clients["every"].jetstream()
    cut = Cut()
    acks = {side: Acks() for side in ("cut_side", "majority")}
    two_sided = TwoSidedJetStream({side: clients[side].jetstream() for side in acks}, clients["nodes"], acks, cut)
    publisher = EventPublisher(two_sided, ack_timeout=2.0)  # type: ignore[arg-type]
    tq = f"tq-partition-{uuid.uuid4().hex[:8]}"
    audit_settings = settings_for(tmp_path / "audit", ",".join(cluster.urls()), checkpoint_every=0, batch_size=50)
    prefix, year = f"p{uuid.uuid4().hex[:6]}", china_today().year
    specs = [make_spec(f"{prefix}u{i}", year, year + 4, task_no=1 + i) for i in range(ASSIGNMENTS)]
    figures: list[dict[str, Any]] = []
    worker = build_worker(temporal_client, every, tq, publisher=publisher)
    async with worker, running(audit_settings) as audit:
        handles: list[Handle] = [
            await temporal_client.start_workflow(
                AssignmentWorkflow.run, AssignmentInput(spec=s), id=workflow_id(s.assignment_id), task_queue=tq
            )
            for s in specs
        ]
        try:
            for h, s in zip(handles, specs, strict=True):
                await send(h, AcceptAssignment(actor=department(s.unit_id)))
            years = [(await h.query(AssignmentWorkflow.status)).year for h in handles]
            await asyncio.gather(*(send(h, plan(s.unit_id, y)) for h, s, y in zip(handles, specs, years, strict=True)))
            approve = [ReviewAnnualPlan(actor=SUPERVISOR, year=y, decision="approve", comment="同意") for y in years]
            await asyncio.gather(*(send(h, a) for h, a in zip(handles, approve, strict=True)))
            for round_no in range(ROUNDS):
                figures.append(await partition_round(cluster, every, handles, specs, years, round_no, cut))
            expected = await expected_ids(handles)
            await assert_complete(audit, every, expected)
        finally:
            await asyncio.gather(*(h.terminate(reason="test over") for h in handles), return_exceptions=True)
    acked = acks["cut_side"].ids + acks["majority"].ids
    assert set(acked) <= expected  # every acknowledged event is in the stream and the ledger, once
    for n, f in enumerate(figures, start=1):
        print(f"partition round {n}: {f}")
    said = "; ".join(
        f"over the connection to the first round's {'leader' if side == 'cut_side' else 'follower'}: "
        f"{sum(a.ids.values())} acks ({a.during_cut} while its node was cut off, {a.during_cut_duplicates} "
        f"of them duplicates), {a.failed} refused"
        for side, a in acks.items()
    )
    print(
        f"partition, {ROUNDS} round(s), {ASSIGNMENTS} assignments: {len(expected)} events, "
        f"each once in stream and ledger; {said}"
    )


async def partition_round(
    cluster: PartitionableCluster,
    every: JetStreamContext,
    handles: list[Handle],
    specs: list[Any],
    years: list[int],
    round_no: int,
    cut: Cut,
) -> dict[str, Any]:
    """Reports from every assignment; the leader cut off after the first third, healed once
    commands completed during the cut."""
    done: list[float] = []

    async def reports(h: Handle, unit: str, y: int) -> None:
        for k in range(REPORTS_PER_ROUND):
            percent = 1 + 6 * (round_no * REPORTS_PER_ROUND + k)
            await send(h, report(unit, f"{y}-Q1", percent))
            done.append(time.monotonic())

    leader = await the_leader(cluster, every)
    observer = await connected(cluster.urls([n for n in cluster.nodes if n is not leader]), "policyflow-observer")
    flow = asyncio.gather(*(reports(h, s.unit_id, y) for h, s, y in zip(handles, specs, years, strict=True)))
    total = len(handles) * REPORTS_PER_ROUND
    try:
        await until(lambda: len(done) >= len(handles) // 2, "commands flowing before the cut", 60)
        cluster.cut(leader)
        t_cut, before = time.monotonic(), len(done)
        cut.node = leader
        successor = await the_leader(cluster, observer.jetstream(), not_=leader)  # as the majority sees it
        t_elected = time.monotonic()
        # Heal once commands have gone on completing during the cut (or all are done).
        await until(lambda: len(done) >= min(total, before + len(handles) // 2), "commands completing while cut", 120)
        during = len(done) - before
        cut.node = None
        cluster.heal()
        t_heal = time.monotonic()
        await asyncio.wait_for(flow, 180)
        await until(lambda: replicas_current(every), "the healed node caught up", 90)
        t_whole = time.monotonic()
    finally:
        cluster.heal()
        await observer.close()
        if not flow.done():
            flow.cancel()
            await asyncio.gather(flow, return_exceptions=True)
    return {
        "cut": leader.name,
        "new leader": successor.name,
        "commands": total,
        "done before/while/after cut": (before, during, total - before - during),
        "new leader after s": round(t_elected - t_cut, 1),
        "cut for s": round(t_heal - t_cut, 1),
        "heal to caught up s": round(t_whole - t_heal, 1),
    }
