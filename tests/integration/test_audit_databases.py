"""The audit service on SQLite and on PostgreSQL: ingest, verify, proofs, replay, tamper (its migrations:
test_migrations)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.base import UserRole
from services.audit.ledger import entry_hash, leaf_hash, verify_inclusion
from tests.databases import TestDatabase
from tests.integration.audit_support import T0, WEEK, many_events, running, settings_for
from tests.support.publishing import publish

pytestmark = pytest.mark.usefixtures("event_stream")  # each test on a fresh event stream


async def test_the_service_on_each_database(tmp_path: Path, nats_url: str, database: TestDatabase) -> None:
    events = many_events(30)  # 420 entries: stored Merkle nodes (2**8 leaves) are exercised too
    settings = settings_for(tmp_path, nats_url, database_url=database.url("audit"), checkpoint_every=100)
    async with running(settings) as svc:
        await publish(nats_url, events)
        await publish(nats_url, events[100:150], msg_id_suffix="-again")  # duplicates the ledger drops
        await svc.wait_for_size(len(events))
        auth = svc.auth(UserRole.SUPERVISOR)
        cp = (await svc.client.post("/v1/audit/checkpoints", headers=auth)).json()
        assert cp["size"] == len(events)

        verdict = (await svc.client.get("/v1/audit/verify", headers=auth)).json()
        assert verdict["ok"] is True and verdict["count"] == len(events) and verdict["checkpoints_checked"] >= 1

        proof = (
            await svc.client.get("/v1/audit/proofs/inclusion", params={"event_id": events[300].event_id}, headers=auth)
        ).json()
        leaf = leaf_hash(entry_hash(bytes.fromhex(proof["entry"]["prev_hash"]), proof["entry"]["canonical"]))
        path = [bytes.fromhex(h) for h in proof["proof"]]
        assert verify_inclusion(leaf, proof["leaf_index"], proof["tree_size"], path, bytes.fromhex(cp["root"]))

        as_of = (T0 + WEEK * 5).isoformat()
        states = (await svc.client.get("/v1/audit/replay", params={"as_of": as_of}, headers=auth)).json()["items"]
        assert len(states) == 30 and {s["last_seq"] for s in states} == {5}

        await database.execute(
            "audit", "UPDATE ledger SET canonical = replace(canonical, '2026', '2027') WHERE ledger_seq = 222"
        )
        verdict = (await svc.client.get("/v1/audit/verify", headers=auth)).json()
        assert verdict["ok"] is False and verdict["first_bad_seq"] == 222
