"""The audit API over real HTTP: who may read and write, pages and streams, history, replay."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from contracts.base import UserRole
from contracts.fold import fold
from tests.integration.audit_support import T0, WEEK, lifecycle, running, settings_for
from tests.support.publishing import publish

pytestmark = pytest.mark.usefixtures("event_stream")  # each test on a fresh event stream

NDJSON = {"Accept": "application/x-ndjson"}


async def test_tokens_roles_and_bad_queries(tmp_path: Path, nats_url: str) -> None:
    async with running(settings_for(tmp_path, nats_url, checkpoint_every=0)) as svc:
        await publish(nats_url, lifecycle(14, "yuzhong"))
        await svc.wait_for_size(14)
        c = svc.client
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/v1/audit/events")).status_code == 401
        bad = {"Authorization": "Bearer not.a.token"}
        assert (await c.get("/v1/audit/verify", headers=bad)).status_code == 401
        department = svc.auth(UserRole.DEPARTMENT, "yuzhong")
        for path in ("/v1/audit/events", "/v1/audit/verify", "/v1/audit/checkpoints/latest"):
            assert (await c.get(path, headers=department)).status_code == 403
        assert (await c.get("/v1/audit/events", headers=svc.auth(UserRole.VERIFIER))).status_code == 403
        # Auditors are read-only: their write is refused, a supervisor's is not.
        assert (await c.post("/v1/audit/checkpoints", headers=svc.auth())).status_code == 403
        assert (await c.post("/v1/audit/checkpoints", headers=department)).status_code == 403
        assert (await c.post("/v1/audit/checkpoints", headers=svc.auth(UserRole.SUPERVISOR))).status_code == 201

        auditor = svc.auth()
        for path, params, field in [
            ("/v1/audit/replay", {"as_of": "yesterday"}, "query.as_of"),
            ("/v1/audit/replay", {}, "query.as_of"),
            ("/v1/audit/events", {"after_seq": "-1"}, "query.after_seq"),
            ("/v1/audit/events", {"limit": "5000"}, "query.limit"),
            ("/v1/audit/events", {"limit": "x"}, "query.limit"),
            ("/v1/audit/proofs/inclusion", {}, "query.event_id"),
            ("/v1/audit/proofs/inclusion", {"event_id": "x", "size": "0"}, "query.size"),
            ("/v1/audit/proofs/consistency", {"from": "0"}, "query.from"),
            ("/v1/audit/proofs/consistency", {"from": "99"}, "query.from"),
        ]:
            r = await c.get(path, params=params, headers=auditor)
            assert r.status_code == 422, (path, params, r.text)
            assert r.json()["errors"][0]["field"] == field, r.json()
        assert (await c.get("/v1/audit/assignments/nope/history", headers=auditor)).status_code == 404
        r = await c.get("/v1/audit/proofs/inclusion", params={"event_id": "nope"}, headers=auditor)
        assert r.status_code == 404


async def test_pages_filters_and_ndjson(tmp_path: Path, nats_url: str) -> None:
    yuzhong, jiangbei = lifecycle(14, "yuzhong"), lifecycle(3, "jiangbei")
    async with running(settings_for(tmp_path, nats_url)) as svc:
        await publish(nats_url, [e for pair in zip(yuzhong, jiangbei, strict=True) for e in pair])
        await svc.wait_for_size(28)
        c, auth = svc.client, svc.auth()
        page = (await c.get("/v1/audit/events", params={"limit": 5, "after_seq": 10}, headers=auth)).json()
        assert page["total"] == 28 and [i["ledger_seq"] for i in page["items"]] == [11, 12, 13, 14, 15]
        item = page["items"][0]
        assert item["event"] == json.loads(item["canonical"])
        page = (await c.get("/v1/audit/events", params={"unit_id": "jiangbei"}, headers=auth)).json()
        assert page["total"] == 14 and {i["unit_id"] for i in page["items"]} == {"jiangbei"}
        params = {"assignment_id": yuzhong[0].assignment_id, "type": "ProgressReported"}
        page = (await c.get("/v1/audit/events", params=params, headers=auth)).json()
        assert [i["event_id"] for i in page["items"]] == [yuzhong[9].event_id, yuzhong[10].event_id]

        r = await c.get("/v1/audit/events", params={"after_seq": 20}, headers={**auth, **NDJSON})
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert [line["ledger_seq"] for line in lines] == list(range(21, 29))
        assert "event" not in lines[0] and "canonical" in lines[0]


async def test_history_reads_like_a_timeline(tmp_path: Path, nats_url: str) -> None:
    events = lifecycle(14, "yuzhong")
    async with running(settings_for(tmp_path, nats_url)) as svc:
        await publish(nats_url, events)
        await svc.wait_for_size(14)
        r = await svc.client.get(f"/v1/audit/assignments/{events[0].assignment_id}/history", headers=svc.auth())
        body = r.json()
        assert r.status_code == 200 and body["unit_id"] == "yuzhong" and body["task_no"] == 14
        assert [i["seq"] for i in body["items"]] == list(range(14))
        assert body["items"][1]["actor"] == {"sub": "department:yuzhong", "role": "department", "unit_id": "yuzhong"}
        summaries = [i["summary"] for i in body["items"]]
        assert summaries[3].startswith("年度计划退回：指标不具体")
        assert summaries[5].startswith("蓝色督办：annual_plan:2026 逾期 2 个工作日")
        assert "进展 30%，" in summaries[9] and "佐证 1 份" in summaries[9]
        assert body["state"]["stage"] == "completed"
        assert body["state"] == json.loads(fold(events).model_dump_json())  # type: ignore[union-attr]


async def test_replay_as_of_returns_the_state_at_that_moment(tmp_path: Path, nats_url: str) -> None:
    yuzhong, jiangbei = lifecycle(14, "yuzhong"), lifecycle(3, "jiangbei", start=T0 + dt.timedelta(days=1))
    async with running(settings_for(tmp_path, nats_url)) as svc:
        await publish(nats_url, yuzhong + jiangbei)
        await svc.wait_for_size(28)
        c, auth = svc.client, svc.auth()
        # Between yuzhong's Q1 report (seq 9) and its Q2 report (seq 10): the Q1 state.
        between = (T0 + WEEK * 9 + dt.timedelta(days=3)).astimezone(dt.timezone(dt.timedelta(hours=8)))
        r = await c.get("/v1/audit/replay", params={"as_of": between.isoformat(), "unit_id": "yuzhong"}, headers=auth)
        assert r.status_code == 200, r.text
        [state] = r.json()["items"]
        assert state == json.loads(fold(yuzhong[:10]).model_dump_json())  # type: ignore[union-attr]
        assert state["percent"] == 30.0 and state["reports"] == 1 and state["stage"] == "implementing"

        # Exactly at an event's time it counts; one microsecond before it does not.
        at = (T0 + WEEK * 10).isoformat()
        states = (await c.get("/v1/audit/replay", params={"as_of": at}, headers=auth)).json()["items"]
        by_unit = {s["unit_id"]: s for s in states}
        assert by_unit["yuzhong"]["percent"] == 65.0 and by_unit["jiangbei"]["percent"] == 30.0
        before = (T0 - dt.timedelta(microseconds=1)).isoformat()
        assert (await c.get("/v1/audit/replay", params={"as_of": before}, headers=auth)).json()["items"] == []

        r = await c.get("/v1/audit/replay", params={"as_of": "2030-01-01", "task_no": 3}, headers={**auth, **NDJSON})
        [line] = r.text.splitlines()
        assert json.loads(line)["stage"] == "completed" and json.loads(line)["unit_id"] == "jiangbei"
