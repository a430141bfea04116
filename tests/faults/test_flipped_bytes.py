"""A flipped byte on disk, found and reported, never served as if nothing happened: one in a ledger
row (audit verify names the entry) and one in a read-model row (the check that folds the stream
afresh names the row and column; a rebuild repairs it).

Each service is stopped, its WAL checkpointed into the database file, the byte flipped in the file
(every copy of the row's bytes, stale pages included), and the service started again. Then a byte
of one message in a NATS block file: nats-server skips that message without reporting it, and
`policyflow admin backup` refuses, naming its sequence.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.figures import table
from tests.faults.harness import FaultStack
from tests.faults.scenario import Driver, programme
from tests.support.clock import china_today

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
async def own_stack(tmp_path: Path) -> AsyncIterator[FaultStack]:
    stack = FaultStack(tmp_path / "var")
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


def flip_stored(database: Path, sql: str, params: tuple[Any, ...]) -> bytes:
    """Flip one byte in the middle of the value `sql` selects, in the database file itself."""
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        value = db.execute(sql, params).fetchone()[0]
    stored = value if isinstance(value, bytes) else str(value).encode()
    data = bytearray(database.read_bytes())
    at, found = 0, 0
    while (at := data.find(stored, at)) >= 0:
        data[at + len(stored) // 2] ^= 0x01
        at, found = at + len(stored), found + 1
    assert found, "the row's bytes are not in the database file"
    database.write_bytes(bytes(data))
    return stored


async def flip_in_block(stack: FaultStack, assignment_id: str) -> int:
    """Stop nats-server, flip a byte of the assignment's AssignmentAccepted message in its block
    file, start it again; returns the message's stream sequence."""
    events = await stack.stream_events(assignment_id.split(".")[0])
    seq, event = next((q, e) for q, e in events if e.assignment_id == assignment_id and e.type == "AssignmentAccepted")
    await asyncio.to_thread(stack.nats_server.stop)
    block = next((stack.var_dir / "nats" / "jetstream").rglob("POLICYFLOW_EVENTS/msgs/*.blk"))
    data = bytearray(block.read_bytes())
    at = data.find(f'"event_id":"{event.event_id}"'.encode())
    assert at >= 0, "the message is not in the block file"
    data[at + 14] ^= 0x01
    block.write_bytes(bytes(data))
    await asyncio.to_thread(stack.nats_server.start, 90.0)
    return seq


async def restart(stack: FaultStack, name: str, change: Any) -> None:
    stack.procs[name].stop()
    change()
    stack.procs[name].spawn()
    await stack.ready(name)


async def test_a_flipped_byte_in_the_ledger_and_in_the_read_model_is_reported(
    own_stack: FaultStack, http: httpx.AsyncClient
) -> None:
    stack = own_stack
    year = china_today().year
    body = programme(tasks=1, units=3, start_year=year, horizon=year + 1, tag="flip")
    pid = body.programme_id
    driver = Driver(stack, http)
    aids = await driver.import_and_dispatch(body)
    for aid in aids:
        await driver.must(
            aid, "accept", "progress", f"/v1/assignments/{aid}/accept", "department", aid.rsplit(".", 1)[1]
        )
    await stack.quiesce(http, pid)
    assert (await stack.verify(http))["ok"] is True

    # ---- the ledger ----------------------------------------------------------------------------------
    ledger_db = stack.var_dir / "audit.sqlite"
    with sqlite3.connect(ledger_db) as db:
        ledger_table = next(
            name
            for (name,) in db.execute("select name from sqlite_master where type='table'")
            if "canonical" in [c[1] for c in db.execute(f"pragma table_info({name})")]
        )
        count = db.execute(f"select count(*) from {ledger_table}").fetchone()[0]
    target = count // 2 + 1
    sql = f"select canonical from {ledger_table} where ledger_seq = ?"
    await restart(stack, "audit", lambda: flip_stored(ledger_db, sql, (target,)))
    verdict = await stack.verify(http)
    assert verdict["ok"] is False, verdict
    assert str(target) in str(verdict), f"verify does not name ledger entry {target}: {verdict}"

    # ---- the read model ----------------------------------------------------------------------------
    url = f"{stack.url('progress')}/v1/admin/check-read-models"
    healthy = (await http.get(url, headers=stack.headers("admin"), timeout=120)).json()
    assert healthy["ok"] is True and healthy["caught_up"] is True, healthy
    models_db = stack.var_dir / "progress.sqlite"
    victim = aids[1]
    sql = "select state from rm_assignments where assignment_id = ?"
    await restart(stack, "progress", lambda: flip_stored(models_db, sql, (victim,)))
    r = await http.get(url, headers=stack.headers("admin"), timeout=120)
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["ok"] is False, found
    assert {(d["key"][0], d["column"]) for d in found["differences"]} >= {(victim, "state")}, found
    rebuilt = await http.post(
        f"{stack.url('progress')}/v1/admin/rebuild-read-models", headers=stack.headers("admin"), timeout=300
    )
    assert rebuilt.status_code == 200
    repaired = (await http.get(url, headers=stack.headers("admin"), timeout=120)).json()
    assert repaired["ok"] is True, repaired
    # ---- a NATS block file: the server skips the message without a word; the backup's check names it ----
    bad_seq = await flip_in_block(stack, aids[2])
    env = {**os.environ, "POLICYFLOW_VAR": str(stack.var_dir), "NATS_PORT": str(stack.stack.config.nats_port)}
    for name in ("NATS_URL", "TEMPORAL_ADDRESS", "DATABASE_URL"):
        env.pop(name, None)
    argv = [sys.executable, "-m", "services.cli.main", "admin", "backup", str(stack.var_dir.parent / "backup")]
    done = await asyncio.to_thread(subprocess.run, argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout
    assert f"message(s) {bad_seq} cannot be read" in done.stderr, done.stderr

    said = str({k: verdict.get(k) for k in verdict if k != "ok"})[:150]
    first = found["differences"][0]["column"]
    table(
        "flipped bytes",
        [
            (f"ledger entry {target} of {count}: verify says", said),
            ("read model row: check reports", f"{found['differences_total']} difference(s), first {first}"),
            ("after a rebuild: check ok", repaired["ok"]),
            (f"NATS message {bad_seq}: admin backup says", done.stderr.strip()[:150]),
        ],
    )
