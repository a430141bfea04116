"""A 3-node JetStream cluster from the wheel: kill -9 a node, then the stream leader, under load.

Every publish is retried with the same Nats-Msg-Id until acknowledged, as the worker's
publishing activity does; afterwards the stream holds every message exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient

from contracts.subjects import EVENT_STREAM, event_subject
from deploy.local.servers import Server, nats_cluster
from services.shared.streams import ensure_event_stream

MESSAGES = 600


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Server]]:
    nodes = nats_cluster(tmp_path)
    for node in nodes:
        node.start()
    yield nodes
    for node in nodes:
        node.stop()


async def connect(nodes: list[Server]) -> NatsClient:
    servers = [f"nats://127.0.0.1:{n.port}" for n in nodes]
    return await nats.connect(servers=servers, reconnect_time_wait=0.1, max_reconnect_attempts=-1)


async def publish_until_acked(nc: NatsClient, i: int) -> None:
    js = nc.jetstream()
    subject = event_subject("load", f"u{i % 7}", "ProgressReported")
    while True:
        try:
            await js.publish(subject, f"{i}".encode(), headers={"Nats-Msg-Id": f"m-{i}"}, timeout=2)
            return
        except Exception:  # noqa: BLE001 - a node is down or a leader is moving: retry the same id
            await asyncio.sleep(0.1)


async def retrying(call, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """A cluster answers API calls again once a new leader is elected: retry until then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def run_load_and_kill(nodes: list[Server], pick_victim) -> dict[str, int]:  # type: ignore[no-untyped-def]
    nc = await connect(nodes)
    try:
        await ensure_event_stream(nc.jetstream(), replicas=3)  # waits for the cluster to elect its leaders
        js = nc.jetstream()

        async def load() -> None:
            for i in range(MESSAGES):
                await publish_until_acked(nc, i)

        task = asyncio.create_task(load())
        await asyncio.sleep(0.3)
        victim = await pick_victim(js, nodes)
        victim.kill()
        await asyncio.sleep(1.0)
        victim.start()
        await asyncio.wait_for(task, timeout=120)
        info = None
        for _ in range(100):  # the restarted replica catches up
            info = await retrying(lambda: js.stream_info(EVENT_STREAM))
            if info.state.messages == MESSAGES:
                break
            await asyncio.sleep(0.2)
        assert info is not None
        seen: list[int] = []
        sub = await retrying(lambda: js.pull_subscribe("pf.events.>", stream=EVENT_STREAM))
        while len(seen) < info.state.messages:
            for msg in await retrying(lambda: sub.fetch(200, timeout=5)):
                seen.append(int(msg.data))
                await msg.ack()
        return {"published": MESSAGES, "stored": info.state.messages, "distinct": len(set(seen)), "read": len(seen)}
    finally:
        # a client left reconnecting to stopped nodes would outlive the test in the session loop
        with contextlib.suppress(Exception):
            await nc.close()


async def any_follower(js, nodes: list[Server]) -> Server:  # type: ignore[no-untyped-def]
    info = await retrying(lambda: js.stream_info(EVENT_STREAM))
    leader = info.cluster.leader if info.cluster else None
    return next(n for n in nodes if n.name != f"nats-{leader}")


async def the_leader(js, nodes: list[Server]) -> Server:  # type: ignore[no-untyped-def]
    info = await retrying(lambda: js.stream_info(EVENT_STREAM))
    assert info.cluster and info.cluster.leader
    return next(n for n in nodes if n.name == f"nats-{info.cluster.leader}")


@pytest.mark.parametrize("pick_victim", [any_follower, the_leader], ids=["follower", "leader"])
async def test_kill_a_node_under_load_loses_nothing(cluster: list[Server], pick_victim) -> None:  # type: ignore[no-untyped-def]
    figures = await run_load_and_kill(cluster, pick_victim)
    print(f"cluster kill -9 ({pick_victim.__name__}): {figures}")
    assert figures["stored"] == MESSAGES
    assert figures["distinct"] == figures["read"] == MESSAGES
