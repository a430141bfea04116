"""Signed checkpoints, RFC 6962 proofs from the API checked with the pure verifier, tampering."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from contracts.base import UserRole
from services.audit import queries
from services.audit.ledger import entry_hash, leaf_hash, merkle_root, verify_consistency, verify_inclusion
from services.audit.verify import checkpoint_signature_ok
from tests.integration.audit_support import Service, lifecycle, many_events, running, settings_for
from tests.support.publishing import publish

pytestmark = pytest.mark.usefixtures("event_stream")  # each test on a fresh event stream


def included(proof: dict[str, Any], canonical: str | None = None) -> bool:
    """What an auditor does with an inclusion proof: rebuild the leaf from the entry itself."""
    entry = proof["entry"]
    digest = entry_hash(bytes.fromhex(entry["prev_hash"]), canonical or entry["canonical"])
    cp = proof["checkpoint"]
    return checkpoint_signature_ok(cp, cp["public_key_pem"]) and verify_inclusion(
        leaf_hash(digest),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(cp["root"]),
    )


async def checkpoint(svc: Service) -> dict[str, Any]:
    r = await svc.client.post("/v1/audit/checkpoints", headers=svc.auth(UserRole.SUPERVISOR))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_checkpoints_and_proofs_verify_and_forgeries_fail(tmp_path: Path, nats_url: str) -> None:
    first, second = many_events(20), many_events(20, first=20)  # 280 + 280 entries: past 2**8 leaves
    async with running(settings_for(tmp_path, nats_url, checkpoint_every=0)) as svc:
        c, auth = svc.client, svc.auth()
        assert (await c.get("/v1/audit/checkpoints/latest", headers=auth)).status_code == 404
        await publish(nats_url, first)
        await svc.wait_for_size(280)
        old = await checkpoint(svc)
        await publish(nats_url, second)
        await svc.wait_for_size(560)
        new = await checkpoint(svc)
        assert (await checkpoint(svc))["size"] == 560  # nothing new: the same checkpoint again

        latest = (await c.get("/v1/audit/checkpoints/latest", headers=auth)).json()
        assert latest["size"] == 560 and latest["root"] == new["root"]
        assert checkpoint_signature_ok(latest, latest["public_key_pem"])
        assert latest["signed_note"].startswith("policyflow.local/audit\n560\n")
        lines = (await c.get("/v1/audit/events", headers={**auth, "Accept": "application/x-ndjson"})).text
        hashes = [bytes.fromhex(json.loads(line)["hash"]) for line in lines.splitlines()]
        assert merkle_root(hashes[:280]).hex() == old["root"] and merkle_root(hashes).hex() == new["root"]

        cases = [(first[0], 280), (first[279], 280), (first[0], None), (second[0], None), (second[-1], None)]
        for event, size in cases:
            params = {"event_id": event.event_id} | ({"size": size} if size else {})
            proof = (await c.get("/v1/audit/proofs/inclusion", params=params, headers=auth)).json()
            assert included(proof), (event.event_id, size)
            forged = proof["entry"]["canonical"].replace('"seq":', '"seq":1', 1)
            assert not included(proof, forged)
        for event, size, status in [(second[0], 280, 409), (first[0], 100, 404)]:
            params = {"event_id": event.event_id, "size": size}
            assert (await c.get("/v1/audit/proofs/inclusion", params=params, headers=auth)).status_code == status

        body = (await c.get("/v1/audit/proofs/consistency", params={"from": 280}, headers=auth)).json()
        path = [bytes.fromhex(h) for h in body["proof"]]
        old_root, new_root = bytes.fromhex(body["from"]["root"]), bytes.fromhex(body["to"]["root"])
        assert body["to"]["size"] == 560 and verify_consistency(280, 560, old_root, new_root, path)
        assert not verify_consistency(280, 560, merkle_root(hashes[1:281]), new_root, path)
        assert not verify_consistency(280, 560, old_root, new_root, path[::-1])
        same = (await c.get("/v1/audit/proofs/consistency", params={"from": 560, "to": 560}, headers=auth)).json()
        assert same["proof"] == []


async def test_one_changed_byte_is_named_by_verify(tmp_path: Path, nats_url: str) -> None:
    events = lifecycle(14, "yuzhong") + lifecycle(3, "jiangbei")
    async with running(settings_for(tmp_path, nats_url, checkpoint_every=0)) as svc:
        await publish(nats_url, events)
        await svc.wait_for_size(len(events))
        await checkpoint(svc)
        auth = svc.auth(UserRole.SUPERVISOR)
        assert (await svc.client.get("/v1/audit/verify", headers=auth)).json()["ok"] is True

        db = sqlite3.connect(tmp_path / "audit.sqlite")
        (text,) = db.execute("SELECT canonical FROM ledger WHERE ledger_seq = 17").fetchone()
        db.execute("UPDATE ledger SET canonical = ? WHERE ledger_seq = 17", (text.replace("2026", "2027", 1),))
        db.commit()
        verdict = (await svc.client.get("/v1/audit/verify", headers=auth)).json()
        assert verdict == {
            "ok": False,
            "first_bad_seq": 17,
            "reason": "hash is not SHA-256(prev_hash || canonical): the entry was altered",
        }

        db.execute("UPDATE ledger SET canonical = ? WHERE ledger_seq = 17", (text,))  # restored
        db.execute("UPDATE ledger SET unit_id = 'elsewhere' WHERE ledger_seq = 5")  # a column, not the text
        db.commit()
        verdict = (await svc.client.get("/v1/audit/verify", headers=auth)).json()
        assert verdict["ok"] is False and verdict["first_bad_seq"] == 5 and "unit_id" in verdict["reason"]

        db.execute("UPDATE ledger SET unit_id = 'yuzhong' WHERE ledger_seq = 5")
        # Dropping the newest entry leaves a valid chain: only the signed checkpoint shows it.
        db.execute("DELETE FROM ledger WHERE ledger_seq = 28")
        db.commit()
        db.close()
        verdict = (await svc.client.get("/v1/audit/verify", headers=auth)).json()
        assert verdict["ok"] is False and verdict["first_bad_seq"] == 28 and "covers 28" in verdict["reason"]


async def test_strict_verify_recanonicalises_what_no_checkpoint_covers_yet(tmp_path: Path, nats_url: str) -> None:
    events = lifecycle(14, "yuzhong")
    async with running(settings_for(tmp_path, nats_url, checkpoint_every=0)) as svc:
        await publish(nats_url, events)
        await svc.wait_for_size(len(events))
        auth = svc.auth(UserRole.AUDITOR)
        strict = {"strict": "true"}
        verdict = (await svc.client.get("/v1/audit/verify", params=strict, headers=auth)).json()
        assert verdict["ok"] is True and verdict["strict"] is True and verdict["count"] == 14

        # The newest entry rewritten with a space and its hash recomputed: the same event, the
        # chain intact, no checkpoint over it. Only re-canonicalising shows the text was not written so.
        db = sqlite3.connect(tmp_path / "audit.sqlite")
        prev, text = db.execute("SELECT prev_hash, canonical FROM ledger WHERE ledger_seq = 14").fetchone()
        spaced = text.replace('"seq":', '"seq": ', 1)
        digest = entry_hash(bytes.fromhex(prev), spaced).hex()
        db.execute("UPDATE ledger SET canonical = ?, hash = ? WHERE ledger_seq = 14", (spaced, digest))
        db.commit()
        db.close()
        assert (await svc.client.get("/v1/audit/verify", headers=auth)).json()["ok"] is True
        verdict = (await svc.client.get("/v1/audit/verify", params=strict, headers=auth)).json()
        assert verdict == {
            "ok": False,
            "first_bad_seq": 14,
            "reason": "the stored text is not in canonical form (RFC 8785)",
        }


async def test_verify_and_replay_walk_the_ledger_page_by_page_and_catch_storage_tampering(
    tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walks read the ledger in keyset pages; a column the hash does not cover is still checked."""
    events = many_events(4)
    async with running(settings_for(tmp_path, nats_url, checkpoint_every=0)) as svc:
        await publish(nats_url, events)
        await svc.wait_for_size(len(events))
        await checkpoint(svc)
        auth = svc.auth(UserRole.AUDITOR)
        as_of = {"as_of": "2999-01-01T00:00:00Z"}
        whole = (await svc.client.get("/v1/audit/replay", params=as_of, headers=auth)).json()["items"]
        monkeypatch.setattr(queries, "PAGE", 7)  # many pages, and an assignment's events split across them
        paged = (await svc.client.get("/v1/audit/replay", params=as_of, headers=auth)).json()["items"]
        assert len(whole) == 4 and paged == whole
        verdict = (await svc.client.get("/v1/audit/verify", headers=auth)).json()
        assert verdict["ok"] is True and verdict["count"] == len(events) and verdict["checkpoints_checked"] == 1

        db = sqlite3.connect(tmp_path / "audit.sqlite")
        # The same bytes stored as a BLOB instead of text: the entry has no canonical text any more.
        db.execute("UPDATE ledger SET canonical = CAST(canonical AS BLOB) WHERE ledger_seq = 9")
        db.commit()
        verdict = (await svc.client.get("/v1/audit/verify", headers=auth)).json()
        assert verdict == {"ok": False, "first_bad_seq": 9, "reason": "the entry has no canonical text"}
        db.execute("UPDATE ledger SET canonical = CAST(canonical AS TEXT) WHERE ledger_seq = 9")
        # The time column moved by a second: range queries would be steered, the hash does not cover it.
        (occurred,) = db.execute("SELECT occurred_at FROM ledger WHERE ledger_seq = 12").fetchone()
        db.execute("UPDATE ledger SET occurred_at = ? WHERE ledger_seq = 12", (occurred[:18] + "9" + occurred[19:],))
        db.commit()
        verdict = (await svc.client.get("/v1/audit/verify", headers=auth)).json()
        assert verdict["ok"] is False and verdict["first_bad_seq"] == 12 and "column occurred_at" in verdict["reason"]
        db.execute("UPDATE ledger SET occurred_at = ? WHERE ledger_seq = 12", (occurred,))
        db.commit()
        db.close()
        assert (await svc.client.get("/v1/audit/verify", headers=auth)).json()["ok"] is True
