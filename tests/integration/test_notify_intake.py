"""The notifier's intake against a real nats-server: messages it cannot read are recorded for
supervisors and terminated (never delivered again), with the position moved past them; a busy day
folds into one digest."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import nats
import pytest

from contracts.subjects import EVENT_STREAM, NOTIFY_DURABLE
from tests.e2e.support import EventFactory, auth
from tests.support.notify import (
    Clock,
    Mailbox,
    Receiver,
    health_position,
    notifier,
    notify_settings,
    subscribe,
    valid_signature,
)
from tests.support.publishing import publish
from tests.support.waiting import until
from workflows.calendar import SHANGHAI


@pytest.mark.usefixtures("event_stream")
async def test_unreadable_messages_are_recorded_and_terminated(
    tmp_path: Path, nats_url: str, parts: tuple[Mailbox, int, Receiver]
) -> None:
    _, port, receiver = parts
    keys = tmp_path / "keys"
    settings = notify_settings(tmp_path, nats_url, port)
    f = EventFactory("cq-2022-79", 7, "yuzhong")
    unknown = f.escalated("blue").model_copy(update={"type": "SomethingNew", "event_id": "x#000001"})
    bad_payload = f.escalated("blue").model_copy(update={"payload": {"level": "purple"}, "event_id": "x#000002"})
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        async with notifier(settings) as (url, _), httpx.AsyncClient(base_url=url) as http:
            hook = f"{receiver.url}/unit"
            await subscribe(http, "/v1/units/yuzhong/subscriptions", auth(keys, "department", "yuzhong"),
                            {"webhooks": [{"url": hook}]})  # fmt: skip
            subject = "pf.events.cq-2022-79.yuzhong.SupervisionEscalated"
            await js.publish(subject, b"not json {", headers={"Content-Type": "application/json"})
            await js.publish(subject, json.dumps({"hello": "world"}).encode())
            await js.publish(subject, b"[1, 2]")
            await publish(js, [unknown, bad_payload])
            last = await publish(js, [f.escalated("blue")])
            await until(lambda: len(receiver.ok()) == 1, "the readable escalation delivered")
            await until(lambda: health_position(http, last), "the position past every message")
            sup = auth(keys, "supervisor")
            r = await http.get("/v1/notifications/rejects", headers=sup)
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["total"] == 5
            reasons = {item["stream_seq"]: item for item in page["items"]}
            assert sorted(reasons) == [1, 2, 3, 4, 5]
            assert "not valid JSON" in reasons[1]["reason"] and reasons[1]["body"] == "not json {"
            assert "event_id" in reasons[2]["reason"] and "not an event" in reasons[2]["reason"]
            assert "not a JSON object" in reasons[3]["reason"]
            assert "SomethingNew" in reasons[4]["reason"] and reasons[4]["event_id"] == "x#000001"
            assert "level" in reasons[5]["reason"] and reasons[5]["event_id"] == "x#000002"
            assert all("Traceback" not in i["reason"] and "ValidationError" not in i["reason"] for i in page["items"])
            assert (await http.get("/v1/notifications/rejects", headers=auth(keys, "department", "yuzhong"))
                    ).status_code == 403  # fmt: skip

            async def settled() -> bool:
                info = await js.consumer_info(EVENT_STREAM, NOTIFY_DURABLE)
                return info.num_ack_pending == 0 and int(info.ack_floor.stream_seq or 0) == last

            await until(settled, "every message acked or terminated")
            info = await js.consumer_info(EVENT_STREAM, NOTIFY_DURABLE)
            assert info.num_redelivered == 0 and info.num_pending == 0
        assert receiver.per_delivery() == {receiver.ok()[0].delivery: 1}
    finally:
        await nc.close()


@pytest.mark.usefixtures("event_stream")
async def test_a_busy_day_folds_into_one_digest_sent_the_next_working_morning(
    tmp_path: Path, nats_url: str, parts: tuple[Mailbox, int, Receiver]
) -> None:
    _, port, receiver = parts
    keys = tmp_path / "keys"
    clock = Clock(dt.datetime(2026, 1, 9, 15, 0, tzinfo=SHANGHAI))  # a Friday afternoon
    settings = notify_settings(tmp_path, nats_url, port, digest_threshold=2)
    events = [EventFactory("cq-2022-79", i, "yuzhong").escalated("yellow") for i in range(1, 5)]
    async with notifier(settings, clock=clock) as (url, app), httpx.AsyncClient(base_url=url) as http:
        hook = f"{receiver.url}/unit"
        secret = (await subscribe(http, "/v1/units/yuzhong/subscriptions", auth(keys, "department", "yuzhong"),
                                  {"webhooks": [{"url": hook}]}))[hook]  # fmt: skip
        last = await publish(nats_url, events)
        await until(lambda: health_position(http, last), "the four escalations recorded")
        await until(lambda: len(receiver.ok()) == 2, "the first two sent singly")
        page = (await http.get("/v1/units/yuzhong/notifications", headers=auth(keys, "supervisor"))).json()
        by_status = sorted((d["event_type"], d["status"]) for d in page["items"])
        assert (
            by_status
            == [("DailyDigest", "pending")]
            + [("SupervisionEscalated", "folded")] * 2
            + [("SupervisionEscalated", "sent")] * 2
        )
        digest = next(d for d in page["items"] if d["event_type"] == "DailyDigest")
        assert dt.datetime.fromisoformat(digest["held_until"]) == dt.datetime(2026, 1, 12, 7, 30, tzinfo=SHANGHAI)
        clock.at = dt.datetime(2026, 1, 12, 7, 29, tzinfo=SHANGHAI)
        assert await app.state.sender.send_due() == 0
        clock.at = dt.datetime(2026, 1, 12, 7, 30, tzinfo=SHANGHAI)  # Monday morning
        await until(lambda: len(receiver.ok()) == 3, "the digest on Monday morning")
        hit = receiver.ok()[2]
        assert hit.delivery == digest["delivery_id"] and valid_signature(secret, hit)
        body = json.loads(hit.body)
        assert body["type"] == "DailyDigest" and "第3项任务" in body["text"] and "第4项任务" in body["text"]
        again = await publish(nats_url, events, msg_id_suffix="-again")  # redelivered: no second digest
        await until(lambda: health_position(http, again), "the repeated events recorded")
        assert await app.state.sender.send_due() == 0
        assert receiver.per_delivery() == {h.delivery: 1 for h in receiver.ok()} and len(receiver.ok()) == 3
