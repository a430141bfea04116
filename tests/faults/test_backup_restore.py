"""`policyflow admin backup` while commands flow, `policyflow admin restore` onto a fresh directory,
and a second stack started on it: every workflow goes on, `audit verify` passes, the read models
equal a rebuild; a backup with one altered byte is refused, naming the file.

Short form (part of `make test`): 2 tasks x 4 units under load while the backup runs.
`FAULTS_ROUNDS=N`: 3 tasks x 4N units.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.shared.revocations import REVOKED_BUCKET, key_of, revoke
from tests.databases import fresh_pg_database, postgres_unavailable
from tests.faults.figures import say, table
from tests.faults.harness import FaultStack, rounds
from tests.faults.scenario import Driver, programme
from tests.support.clock import china_today
from tests.support.requirements import require
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(900 * rounds())
ROOT = Path(__file__).resolve().parents[2]
COMPARED = ("stage", "year", "overdue_level", "percent")


def cli(
    stack: FaultStack | None, *args: str, var: Path | None = None, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`policyflow admin ...` as an operator runs it beside the stack: the same environment as `make up`."""
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "TEMPORAL_ADDRESS", "DATABASE_URL")}
    if stack is not None:
        env.update(POLICYFLOW_VAR=str(stack.var_dir), NATS_PORT=str(stack.stack.config.nats_port))
    if var is not None:
        env["POLICYFLOW_VAR"] = str(var)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    argv = [sys.executable, "-m", "services.cli.main", "admin", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


async def rebuild(stack: FaultStack, http: httpx.AsyncClient) -> dict[str, Any]:
    url = f"{stack.url('progress')}/v1/admin/rebuild-read-models"
    r = await http.post(url, headers=stack.headers("admin"), timeout=300)
    assert r.status_code == 200, r.text
    lines = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert lines and lines[-1].get("finished"), lines[-3:]
    return dict(lines[-1])


async def keep_reporting(driver: Driver, aid: str, index: int, year: int, stop: asyncio.Event) -> None:
    """Accept, plan, approve, then report progress again and again until told to stop."""
    unit = aid.rsplit(".", 1)[1]
    p = f"/v1/assignments/{aid}"
    await driver.must(aid, "accept", "progress", f"{p}/accept", "department", unit)
    plan = {"year": year, "milestones": [{"title": "里程碑", "due": f"{year}-12-15"}], "indicators": []}
    await driver.must(aid, "submit_plan", "progress", f"{p}/plans", "department", unit, plan)
    approve = {"decision": "approve", "comment": "同意"}
    await driver.must(aid, "review_plan", "progress", f"{p}/plans/{year}/review", "supervisor", body=approve)
    quarter = (china_today().month - 1) // 3 + 1
    i = 0
    while not stop.is_set():
        i += 1
        body = {"period": f"{year}-Q{quarter}", "percent": min(100, i + index), "narrative": f"第{i}次填报"}
        await driver.must(aid, "report_progress", "progress", f"{p}/reports", "department", unit, body)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_backup_under_load_restores_into_a_stack_that_goes_on(
    fault_stack: FaultStack, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    n = rounds()
    await round_trip(fault_stack, http, tmp_path, 2 if n == 1 else 3, 4 * n, "backup and restore (SQLite)")


@pytest.mark.postgres
async def test_backup_of_a_stack_on_postgresql_restores_into_an_empty_database(
    http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(await postgres_unavailable())
    async with fresh_pg_database("pf_backup") as source_url, fresh_pg_database("pf_restore") as target_url:
        monkeypatch.setenv("DATABASE_URL", source_url)  # read by the services as FaultStack starts them
        source = FaultStack(tmp_path / "source-var")
        try:
            await source.start()
            await round_trip(
                source, http, tmp_path, 1, 3 * rounds(), "backup and restore (PostgreSQL)", source_url, target_url,
                monkeypatch=monkeypatch,
            )  # fmt: skip
        finally:
            await source.stop()


async def round_trip(
    source: FaultStack,
    http: httpx.AsyncClient,
    tmp_path: Path,
    tasks: int,
    units: int,
    title: str,
    database_url: str | None = None,
    restored_url: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> None:
    """Back `source` up under load, refuse a damaged copy, restore, start a stack on it and check it."""
    fault_stack = source
    year = china_today().year
    body = programme(tasks=tasks, units=units, start_year=year, horizon=year + 1, tag="backup")
    pid = body.programme_id
    driver = Driver(fault_stack, http)
    aids = await driver.import_and_dispatch(body)
    # One assignment is only accepted before the backup: after the restore it must take its next step.
    waiting, loaded = aids[0], aids[1:]
    await driver.must(waiting, "accept", "progress", f"/v1/assignments/{waiting}/accept", "department",
                      waiting.rsplit(".", 1)[1])  # fmt: skip
    stop = asyncio.Event()
    load = asyncio.gather(*(keep_reporting(driver, aid, i, year, stop) for i, aid in enumerate(loaded)))

    async def flowing() -> bool:
        return sum(c.name == "report_progress" and c.ok for c in driver.commands) >= len(loaded)

    backup_dir = tmp_path / "backup"
    await revoke(fault_stack.stack.nats_url_for("admin"), "disabled-before-backup")  # `users disable`'s record
    try:
        await until(flowing, "commands flowing before the backup", 180)
        seq_before = await fault_stack.stream_last_seq()
        t0 = time.monotonic()
        done = await asyncio.to_thread(cli, fault_stack, "backup", str(backup_dir), "--json", database_url=database_url)
        backup_s = time.monotonic() - t0
        seq_after = await fault_stack.stream_last_seq()
        running = not load.done()
    finally:
        stop.set()
        await load
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    saved_seq = int(summary["parts"]["stream"]["last_seq"])
    assert running, "the load ended before the backup did"
    assert seq_before <= saved_seq <= seq_after, (seq_before, saved_seq, seq_after)
    assert seq_after > seq_before, "no event was published while the backup ran"
    stream = summary["parts"]["stream"]
    assert stream["first_seq"] == 1 and stream["messages"] == saved_seq, "the pause cost the stream messages"
    others = {o["name"]: o for o in summary["parts"]["other_streams"]}
    assert set(others) == {"POLICYFLOW_ACCESS", "KV_POLICYFLOW_REVOKED"}, summary["parts"]
    assert others["POLICYFLOW_ACCESS"]["messages"] > 0 and others["KV_POLICYFLOW_REVOKED"]["messages"] >= 1
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    kinds = {manifest["parts"][f"database:{name}"]["kind"] for name in ("audit", "progress", "assignment")}
    assert kinds == {"postgresql" if database_url else "sqlite"}, manifest["parts"]
    secret = [f for f in manifest["files"] if f["secret"]]
    assert secret and all(f["path"].startswith("secret/") for f in secret)
    assert all((backup_dir / f["path"]).stat().st_mode & 0o077 == 0 for f in secret)
    reports = sum(c.name == "report_progress" and c.ok for c in driver.commands)

    # ---- a damaged backup is refused before anything is written ------------------------------------------
    tampered = tmp_path / "tampered"
    shutil.copytree(backup_dir, tampered)
    damaged = next(f["path"] for f in manifest["files"] if f["part"] == "databases")
    flip_byte(tampered / damaged, 5000)
    refused = await asyncio.to_thread(
        cli, None, "restore", str(tampered), var=tmp_path / "refused-var", database_url=restored_url
    )
    assert refused.returncode == 1
    assert damaged in refused.stderr and "SHA-256" in refused.stderr, refused.stderr
    assert not (tmp_path / "refused-var").exists()
    not_empty = await asyncio.to_thread(
        cli, None, "restore", str(backup_dir), var=fault_stack.var_dir, database_url=restored_url
    )
    assert not_empty.returncode == 1 and "not empty" in not_empty.stderr, not_empty.stderr

    # ---- restore onto a fresh directory and start a second stack there ---------------------------------
    restored_var = tmp_path / "restored"
    t1 = time.monotonic()
    done = await asyncio.to_thread(
        cli, None, "restore", str(backup_dir), "--json", var=restored_var, database_url=restored_url
    )
    restore_s = time.monotonic() - t1
    assert done.returncode == 0, done.stderr
    assert int(json.loads(done.stdout)["stream"]["last_seq"]) == saved_seq
    if monkeypatch is not None and restored_url is not None:
        monkeypatch.setenv("DATABASE_URL", restored_url)
    restored = FaultStack(restored_var)
    try:
        t2 = time.monotonic()
        await restored.start()
        start_s = time.monotonic() - t2
        nc = await restored.nats_admin()
        try:  # the disabled account is still disabled, and the access log kept
            entry = await (await nc.jetstream().key_value(REVOKED_BUCKET)).get(key_of("disabled-before-backup"))
            assert entry.value, entry
            access = await nc.jetstream().stream_info("POLICYFLOW_ACCESS")
            assert access.state.last_seq >= others["POLICYFLOW_ACCESS"]["last_seq"], access.state
        finally:
            await nc.close()
        await continue_and_check(restored, http, pid, waiting, loaded, year)
    finally:
        await restored.stop()
    table(
        title,
        [
            ("assignments (one only accepted before the backup)", len(aids)),
            ("progress reports taken while the load ran", reports),
            ("stream seq when the backup began / saved / ended", f"{seq_before} / {saved_seq} / {seq_after}"),
            ("backup, under load (s)", round(backup_s, 1)),
            ("publishing paused for (s)", stream["publishing_paused_s"]),
            ("backup size (bytes)", sum(f["size"] for f in manifest["files"])),
            ("restore (s)", round(restore_s, 1)),
            ("restored stack up (s)", round(start_s, 1)),
        ],
    )


async def continue_and_check(
    stack: FaultStack, http: httpx.AsyncClient, pid: str, waiting: str, loaded: list[str], year: int
) -> None:
    driver = Driver(stack, http)
    unit = waiting.rsplit(".", 1)[1]
    plan = {"year": year, "milestones": [{"title": "恢复后的计划", "due": f"{year}-12-15"}], "indicators": []}
    await driver.must(waiting, "submit_plan", "progress", f"/v1/assignments/{waiting}/plans", "department", unit, plan)
    assert (await stack.workflow_status(http, waiting))["stage"] == "plan_submitted"
    # Every other workflow answers and takes a command: cancelled by a supervisor, whatever its stage.
    for aid in loaded:
        await driver.must(aid, "cancel", "progress", f"/v1/assignments/{aid}/cancel", "supervisor",
                          body={"reason": "恢复演练结束"})  # fmt: skip
    await stack.quiesce(http, pid, timeout=240)
    verify = await stack.verify(http)
    assert verify["ok"] is True, verify
    replayed = await stack.replay(http, pid)
    status = await stack.status_page(http, pid)
    for aid in [waiting, *loaded]:
        wf = await stack.workflow_status(http, aid)
        diverged = {
            k: (wf[k], replayed[aid][k], status[aid][k])
            for k in COMPARED
            if not wf[k] == replayed[aid][k] == status[aid][k]
        }
        assert not diverged, f"{aid}: workflow / replay / read model differ: {diverged}"
    assert {status[aid]["stage"] for aid in loaded} == {"cancelled"}
    rebuilt = await rebuild(stack, http)
    assert await stack.status_page(http, pid) == status, "the read model differs from a rebuild of the stream"
    say(f"  restored stack: verify ok over {verify['count']} entries; rebuild read {rebuilt['messages']} events")
