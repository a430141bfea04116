"""Duplicate storm: the same events sent again and again, every way a duplicate can arrive.

After a small programme has reported (rising percentages), its events are
- republished with the same Nats-Msg-Id (the stream must drop them within its duplicate window),
- republished with new Nats-Msg-Ids, newest first (stored again: consumers must drop them by event id
  and per-assignment sequence, so an old report never overwrites a newer one nor counts twice),
- re-sent by retried publish activities (the real `publish_events`, attempt 2, 3, ...),
- redelivered: while the read model is paused, a competing client takes its deliveries and naks
  them, twice over, so they come back as redeliveries; in the long form the ledger's durable consumer is also
  recreated from the first message, so the ledger receives the whole stream again (the short form's
  ledger redeliveries come from test_kill_restart's crash mid-batch).
At least 1,000 duplicates in all (more with FAULTS_ROUNDS). Afterwards: not one ledger row more,
no double-counted report in any read model, and everything still agrees with the workflows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import nats
import pytest
import structlog
import structlog.testing
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, PubAck
from temporalio.testing import ActivityEnvironment

from contracts.events import Event
from contracts.subjects import AUDIT_DURABLE, EVENT_STREAM, READ_MODEL_DURABLE, event_subject
from tests.faults.figures import say, table
from tests.faults.harness import Clock, FaultStack, duplicates, rounds
from workflows.activities import EventPublisher, PublishEvents

pytestmark = pytest.mark.timeout(600 * rounds())  # generous: a noisy 2-core machine, N rounds

MIN_DUPLICATES = 1000


async def publish_all(js: JetStreamContext, events: list[Event], msg_id: Callable[[Event], str]) -> list[PubAck]:
    """Publish in chunks of 50 in flight, as the admin user (the only one besides the worker who may)."""
    acks: list[PubAck] = []
    for lo in range(0, len(events), 50):
        acks += await asyncio.gather(
            *(
                js.publish(
                    event_subject(e.programme_id, e.unit_id, e.type),
                    e.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": msg_id(e)},
                    stream=EVENT_STREAM,
                    timeout=30,
                )
                for e in events[lo : lo + 50]
            )
        )
    return acks


def renamed(copy: int) -> Callable[[Event], str]:
    return lambda e: f"{e.event_id}~storm-{copy}"


async def nak_rounds(js: JetStreamContext, rounds: int, counts: Counter[str]) -> None:
    """Pull from the read model's own durable and nak every delivery, `rounds` times over: each nak is one
    more delivery of the same message (the read model itself is paused meanwhile, so it gets them all
    afterwards, as redeliveries)."""
    key = "redelivered to the read model after a nak"
    sub = await js.pull_subscribe_bind(durable=READ_MODEL_DURABLE, stream=EVENT_STREAM)
    try:
        for _ in range(rounds):
            while True:
                try:
                    msgs = await sub.fetch(batch=100, timeout=1.0)
                except TimeoutError:
                    break
                for m in msgs:
                    await m.nak()
                    counts[key] += 1
                if len(msgs) < 100:
                    break
    finally:
        await sub.unsubscribe()


async def replay_stream_to_ledger(stack: FaultStack) -> None:
    """Stop the audit service, recreate its durable consumer (same settings) from the first message,
    start it again: the ledger ingest receives every message of the stream once more."""
    await asyncio.to_thread(stack.procs["audit"].stop)
    nc = await stack.nats_admin()
    try:
        js = nc.jetstream()
        config = (await js.consumer_info(EVENT_STREAM, AUDIT_DURABLE)).config
        await js.delete_consumer(EVENT_STREAM, AUDIT_DURABLE)
        await js.add_consumer(
            EVENT_STREAM, config=dataclasses.replace(config, deliver_policy=DeliverPolicy.ALL, opt_start_seq=None)
        )
    finally:
        await nc.close()
    stack.procs["audit"].spawn()
    await stack.ready("audit")


async def audit_deliveries(stack: FaultStack) -> int:
    nc = await stack.nats_admin()
    try:
        return int((await nc.jetstream().consumer_info(EVENT_STREAM, AUDIT_DURABLE)).delivered.consumer_seq or 0)
    finally:
        await nc.close()


async def snapshot(stack: FaultStack, http: httpx.AsyncClient, pid: str, aids: list[str]) -> dict[str, Any]:
    workflows = await asyncio.gather(*(stack.workflow_status(http, a) for a in aids))
    inbox: dict[str, str] = {}
    for unit in sorted({a.rsplit(".", 1)[1] for a in aids}):
        r = await http.get(
            f"{stack.url('assignment')}/v1/units/{unit}/assignments",
            params={"limit": 500},
            headers=stack.headers("supervisor"),
        )
        assert r.status_code == 200, r.text
        inbox |= {i["assignment_id"]: i["stage"] for i in r.json()["items"] if i["programme_id"] == pid}
    return {
        "ledger_ids": [row["event_id"] for row in await stack.ledger(http, pid)],
        "ledger_size": await stack.ledger_size(http),
        "workflow": {w["assignment_id"]: (w["stage"], w["counts"]["reports"], w["percent"]) for w in workflows},
        "read_model": stack.read_model_reports(pid),
        "status": {a: (s["stage"], s["percent"]) for a, s in (await stack.status_page(http, pid)).items()},
        "replay": {a: (s["stage"], s["reports"], s["percent"]) for a, s in (await stack.replay(http, pid)).items()},
        "inbox": inbox,
    }


async def test_a_duplicate_storm_changes_nothing(fault_stack: FaultStack, http: httpx.AsyncClient) -> None:
    from tests.faults.scenario import Driver, programme
    from tests.support.clock import china_today

    n = rounds()
    year = china_today().year
    body = programme(tasks=2, units=4, start_year=year, horizon=year + 1, tag="dup")
    pid = body.programme_id
    driver = Driver(fault_stack, http)
    clock = Clock()
    aids = await driver.import_and_dispatch(body)
    await driver.run(aids, year, year, reporting_only=True)
    clock.lap("programme driven (accept, plan, approve, 3 reports each)")
    await fault_stack.quiesce(http, pid)
    before = await snapshot(fault_stack, http, pid, aids)
    clock.lap("quiescence and snapshot")
    events = [e for _, e in await fault_stack.stream_events(pid)]
    stream_before = len(events)
    copies = max(2, math.ceil(MIN_DUPLICATES / (3 * len(events)))) * n
    say(
        f"\nduplicate storm: {len(aids)} assignments, {len(events)} events, each sent {copies}x three ways, "
        "plus redeliveries"
    )

    counts: Counter[str] = Counter()
    nc = await fault_stack.nats_admin()
    worker_nc = await nats.connect(fault_stack.stack.nats_url_for("worker"))
    try:
        js = nc.jetstream()
        # First one round of new-id copies while the read model is paused: a competing client takes
        # each delivery from the read model's durable and naks it, twice over, so the read model
        # receives them as redeliveries when it resumes.
        progress = fault_stack.procs["progress"]
        progress.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(1.0)  # its pending pull request expires: nothing is delivered to it now
            fresh = await publish_all(js, events[::-1], renamed(copies))
            assert not any(a.duplicate for a in fresh)
            counts["republished, new Nats-Msg-Id, newest first (stored)"] += len(fresh)
            await nak_rounds(js, 2 * n, counts)
        finally:
            progress.signal(signal.SIGCONT)
        clock.lap("copies naked back while the read model was paused")
        await fault_stack.quiesce(http, pid)
        clock.lap("read model caught up on the redeliveries")
        for c in range(copies):
            same = await publish_all(js, events, lambda e: e.event_id)
            assert all(a.duplicate for a in same), "the stream stored a copy with the same Nats-Msg-Id"
            counts["republished, same Nats-Msg-Id (dropped by the stream)"] += len(same)
            fresh = await publish_all(js, events[::-1], renamed(c))
            assert not any(a.duplicate for a in fresh)
            counts["republished, new Nats-Msg-Id, newest first (stored)"] += len(fresh)
        publisher = EventPublisher(worker_nc.jetstream())
        env = ActivityEnvironment()
        batches: dict[str, list[Event]] = {}
        for e in events:
            batches.setdefault(e.assignment_id or e.programme_id, []).append(e)
        with structlog.testing.capture_logs() as logged:  # the activity logs each ack; keep them, quietly
            for attempt in range(2, copies + 2):
                env.info = dataclasses.replace(env.info, attempt=attempt)
                for batch in batches.values():
                    result = await env.run(publisher.publish_events, PublishEvents(events=batch))
                    assert (result.published, result.duplicates) == (0, len(batch)), result
                    counts["re-sent by a retried publish activity (acked as duplicate)"] += len(batch)
        assert all(line.get("duplicate") for line in logged if line.get("event") == "event_published")
    finally:
        await nc.close()
        await worker_nc.close()

    clock.lap("storm sent")
    if n > 1:  # the long form also sends the whole stream to the ledger again (a restart: slower)
        await replay_stream_to_ledger(fault_stack)
        clock.lap("audit restarted on a consumer recreated from seq 1")
    settled = await fault_stack.quiesce(http, pid)
    clock.lap("quiescence")
    if n > 1:
        counts["redelivered to the ledger (consumer recreated from seq 1)"] = await audit_deliveries(fault_stack)
    after = await snapshot(fault_stack, http, pid, aids)
    verify = await fault_stack.verify(http)
    gaps = await fault_stack.gaps(http, pid)
    stream = [e.event_id for _, e in await fault_stack.stream_events(pid)]

    doubled = {
        a: (before["workflow"][a][1], after["read_model"].get(a, (None,))[0])
        for a in aids
        if after["read_model"].get(a, (None,))[0] != before["workflow"][a][1]
    }
    table("duplicates sent", [*counts.items(), ("total", sum(counts.values()))])
    table(
        "afterwards",
        [
            ("stream messages of the programme (before -> after)", f"{stream_before} -> {len(stream)}"),
            ("distinct event ids in the stream", len(set(stream))),
            (
                "ledger rows of the programme (before -> after)",
                f"{len(before['ledger_ids'])} -> {len(after['ledger_ids'])}",
            ),
            ("whole ledger (before -> after)", f"{before['ledger_size']} -> {after['ledger_size']}"),
            ("duplicate event ids in the ledger", len(duplicates(after["ledger_ids"]))),
            ("chain verifies", verify["ok"]),
            ("sequence gaps seen by the ledger", len(gaps)),
            (
                "reports counted (workflows = read model)",
                f"{sum(w[1] for w in after['workflow'].values())} = {sum(r[0] for r in after['read_model'].values())}",
            ),
            ("assignments with a double-counted report", len(doubled)),
            (
                "read model position = stream last seq",
                f"{settled['read_model_position']} = {settled['stream_last_seq']}",
            ),
        ],
    )
    table("seconds", clock.laps)

    assert sum(counts.values()) >= MIN_DUPLICATES * n
    assert counts["redelivered to the read model after a nak"] > 0
    if n > 1:
        assert counts["redelivered to the ledger (consumer recreated from seq 1)"] >= settled["stream_last_seq"]
    assert len(stream) == stream_before + counts["republished, new Nats-Msg-Id, newest first (stored)"]
    assert sorted(set(stream)) == sorted(before["ledger_ids"])
    assert after["ledger_ids"] == before["ledger_ids"], "the ledger changed"
    assert after["ledger_size"] == before["ledger_size"]
    assert not duplicates(after["ledger_ids"])
    assert verify["ok"], verify
    assert not gaps, gaps[:5]
    assert not doubled, doubled
    for key in ("workflow", "read_model", "status", "replay", "inbox"):
        assert after[key] == before[key], f"{key} changed"
    for aid in aids:
        stage, reports, percent = after["workflow"][aid]
        assert after["read_model"][aid] == (reports, percent)
        assert after["status"][aid] == (stage, percent)
        assert after["replay"][aid] == (stage, reports, percent)
        assert after["inbox"][aid] == stage
        assert reports == 3
