"""kill -9 of the audit service in the middle of ingest: after a restart nothing is lost,
duplicated or reordered, and the tracking position always matched the committed entries."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from contracts.base import UserRole
from services.shared.auth import issue_token
from tests.integration.audit_support import many_events, settings_for, spawn
from tests.support.publishing import publish
from tests.support.waiting import until

pytestmark = pytest.mark.usefixtures("event_stream")  # each test on a fresh event stream

NDJSON = "application/x-ndjson"


def ledger_size(url: str) -> int:
    try:
        r = httpx.get(f"{url}/healthz", timeout=2)
        return int(r.json()["ledger_size"]) if r.status_code == 200 else -1
    except httpx.HTTPError:
        return -1


def committed(db: Path) -> tuple[int, int, int]:
    """(entries, highest stream seq among them, tracking position), read straight from SQLite."""
    with sqlite3.connect(db) as conn:
        entries, top = conn.execute("SELECT count(*), coalesce(max(stream_seq), 0) FROM ledger").fetchone()
        (position,) = conn.execute("SELECT stream_seq FROM tracking").fetchone()
    return int(entries), int(top), int(position)


async def test_kill_9_mid_ingest_then_restart(tmp_path: Path, nats_url: str) -> None:
    events = many_events(300)  # 4,200 events of 300 interleaved lifecycles
    settings = settings_for(tmp_path, nats_url, batch_size=100, checkpoint_every=1000)
    url = f"http://127.0.0.1:{settings.port}"
    await publish(nats_url, events)
    log = tmp_path / "audit.log"

    proc = spawn(settings, log)
    try:
        await until(lambda: ledger_size(url) >= 1000, "ingest to get going", 60, interval=0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    entries, top, position = committed(tmp_path / "audit.sqlite")
    assert 1000 <= entries < len(events), "the kill should land mid-ingest"
    assert position == top, "the position is committed with the entries, never ahead or behind"

    proc = spawn(settings, log)
    try:
        await until(lambda: ledger_size(url) >= len(events), "ingest to finish after the restart", 60)
        time.sleep(0.5)  # anything redelivered late would land now
        headers = {"Authorization": f"Bearer {issue_token(settings.keys, UserRole.AUDITOR)}"}
        verify = httpx.get(f"{url}/v1/audit/verify", headers=headers, timeout=30).json()
        assert verify["ok"] is True and verify["count"] == len(events), verify
        assert verify["checkpoints_checked"] == 4
        with httpx.stream("GET", f"{url}/v1/audit/events", headers={**headers, "Accept": NDJSON}) as r:
            rows = [json.loads(line) for line in r.iter_lines() if line]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert sorted(r["event_id"] for r in rows) == sorted(e.event_id for e in events)  # each once
    seqs: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        seqs[r["assignment_id"]].append(r["seq"])
    assert all(s == list(range(14)) for s in seqs.values()), "every assignment's events in order"
    assert "consumer.repositioned" in log.read_text()
