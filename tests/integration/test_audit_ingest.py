"""Events from JetStream land in the ledger once each, in order, whatever the stream does."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.base import UserRole
from tests.integration.audit_support import lifecycle, publish_raw, running, settings_for
from tests.support.publishing import publish

pytestmark = pytest.mark.usefixtures("event_stream")  # each test on a fresh event stream


async def test_a_lifecycle_lands_once_each_in_order(tmp_path: Path, nats_url: str) -> None:
    events = lifecycle(14, "yuzhong") + lifecycle(3, "jiangbei")
    async with running(settings_for(tmp_path, nats_url)) as svc:
        await publish(nats_url, events)
        await svc.wait_for_size(len(events))
        r = await svc.client.get("/v1/audit/events", params={"limit": 1000}, headers=svc.auth())
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == len(events)
        assert [i["event_id"] for i in body["items"]] == [e.event_id for e in events]
        assert [i["ledger_seq"] for i in body["items"]] == list(range(1, len(events) + 1))
        v = (await svc.client.get("/v1/audit/verify", headers=svc.auth())).json()
        assert v["ok"] is True and v["count"] == len(events) and v["head"] == body["items"][-1]["hash"]


async def test_the_same_event_published_twice_is_ledgered_once(tmp_path: Path, nats_url: str) -> None:
    events = lifecycle(14, "yuzhong")
    async with running(settings_for(tmp_path, nats_url)) as svc:
        await publish(nats_url, events)
        # A different Nats-Msg-Id, so JetStream keeps both copies: the ledger must drop them.
        await publish(nats_url, events[3:8], msg_id_suffix="-again")
        await publish(nats_url, lifecycle(3, "jiangbei")[:2])
        await svc.wait_for_size(len(events) + 2)
        r = await svc.client.get("/v1/audit/events", params={"limit": 1000}, headers=svc.auth())
        ids = [i["event_id"] for i in r.json()["items"]]
        assert len(ids) == len(set(ids)) == len(events) + 2
        assert ids[: len(events)] == [e.event_id for e in events]
        assert (await svc.client.get("/v1/audit/verify", headers=svc.auth())).json()["ok"] is True


async def test_a_gap_in_an_assignments_seq_is_reported(tmp_path: Path, nats_url: str) -> None:
    events = lifecycle(14, "yuzhong")
    async with running(settings_for(tmp_path, nats_url)) as svc:
        await publish(nats_url, events[:3] + events[4:6])  # seq 3 never published
        await svc.wait_for_size(5)
        gaps = (await svc.client.get("/v1/audit/gaps", headers=svc.auth())).json()["items"]
        assert [(g["stream_key"], g["expected_seq"], g["got_seq"], g["ledger_seq"]) for g in gaps] == [
            (events[0].assignment_id, 3, 4, 4)
        ]
        await publish(nats_url, [events[3]])  # arrives late: kept, and reported as out of order
        await svc.wait_for_size(6)
        gaps = (await svc.client.get("/v1/audit/gaps", headers=svc.auth())).json()["items"]
        assert [(g["expected_seq"], g["got_seq"]) for g in gaps] == [(3, 4), (6, 3)]


async def test_poison_messages_are_set_aside_and_never_block(tmp_path: Path, nats_url: str) -> None:
    events = lifecycle(14, "yuzhong")
    async with running(settings_for(tmp_path, nats_url)) as svc:
        await publish(nats_url, events[:2])
        await publish_raw(nats_url, "pf.events.cq-2022-79.yuzhong.Junk", b"\xff not json")
        await publish_raw(nats_url, "pf.events.cq-2022-79.yuzhong.Junk", b'{"event_id": "x"}')
        forged = events[2].model_copy(update={"event_id": "cq-2022-79.t14.yuzhong#000099"})
        await publish_raw(nats_url, "pf.events.cq-2022-79.yuzhong.Junk", forged.model_dump_json().encode())
        await publish(nats_url, events[2:])
        await svc.wait_for_size(len(events))
        rejects = (await svc.client.get("/v1/audit/rejects", headers=svc.auth())).json()["items"]
        assert len(rejects) == 3
        assert "does not match" in rejects[2]["reason"]
        r = await svc.client.get("/v1/audit/events", params={"limit": 1000}, headers=svc.auth(UserRole.SUPERVISOR))
        assert [i["event_id"] for i in r.json()["items"]] == [e.event_id for e in events]
