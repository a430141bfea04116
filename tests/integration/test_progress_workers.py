"""The progress service with two worker processes (PROGRESS_WORKERS=2), as a real process on real
NATS and Temporal: both answer HTTP, exactly one folds the stream; when that one is killed the
other takes over where the position says (no event lost or applied twice); when the supervisor
itself is killed with -9, its workers stop too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import httpx
import nats

from deploy.local.servers import free_port
from services.progress import readmodel
from services.shared.db import make_engine, sqlite_url
from tests.e2e.support import auth, fresh_event_stream, get_json, lifecycle_events
from tests.support.processes import spawn
from tests.support.publishing import publish
from tests.support.waiting import until


def log_events(path: Path, name: str) -> list[dict[str, object]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                out.append(record)
    return out


def children(parent: int) -> set[int]:
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.add(int(stat.parent.name))
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


async def test_two_workers_one_consumer_takeover_and_exit_with_supervisor(
    tmp_path: Path, nats_url: str, temporal_address: str
) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await fresh_event_stream(js)
    port, log_path = free_port(), tmp_path / "progress.log"
    env = {
        **os.environ, "NATS_URL": nats_url, "TEMPORAL_ADDRESS": temporal_address, "POLICYFLOW_VAR": str(tmp_path),
        "POLICYFLOW_KEY_DIR": str(tmp_path / "keys"), "PROGRESS_PORT": str(port), "PROGRESS_WORKERS": "2",
        "PROGRESS_DATABASE_URL": sqlite_url(tmp_path / "progress.sqlite"), "LOG_LEVEL": "INFO",
    }  # fmt: skip
    proc = spawn("services.progress", env, log_path)
    base, sup = f"http://127.0.0.1:{port}", auth(tmp_path / "keys", "supervisor")
    engine = make_engine(env["PROGRESS_DATABASE_URL"])
    workers: set[int] = set()
    try:
        async with httpx.AsyncClient(timeout=10) as c:

            async def position_is(seq: int) -> bool:
                try:
                    return bool((await get_json(c, f"{base}/healthz", {}))["read_model_position"] == seq)
                except httpx.HTTPError:
                    return False

            last = await publish(js, lifecycle_events("wk-a", n_units=12))
            await until(lambda: position_is(last), timeout=60)

            async def both_started() -> bool:
                return len(log_events(log_path, "progress.started")) == 2

            await until(both_started, timeout=60)
            workers = children(proc.pid)
            taken = log_events(log_path, "read_model.lease_taken")
            waiting = log_events(log_path, "read_model.lease_held_elsewhere")
            assert len(taken) == 1 and len(waiting) == 1, (taken, waiting)
            holder, other = int(str(taken[0]["pid"])), int(str(waiting[0]["pid"]))
            assert {holder, other} <= workers
            # Both workers answer (each keep-alive connection lands on one of them).
            for _ in range(10):
                async with httpx.AsyncClient(timeout=10) as fresh:
                    assert (await get_json(fresh, f"{base}/v1/status", sup, limit=1))["total"] == 12

            os.kill(holder, signal.SIGKILL)

            async def taken_over() -> bool:
                return len(log_events(log_path, "read_model.lease_taken")) == 2

            await until(taken_over, timeout=30)
            taken = log_events(log_path, "read_model.lease_taken")
            assert int(str(taken[1]["pid"])) != holder
            # Published once the dead worker's last pull request has expired (0.25 s): messages
            # delivered to a process in the instant it dies come back only after the durable's
            # ack_wait (60 s), with one worker as with several.
            await asyncio.sleep(1.0)
            last = await publish(js, lifecycle_events("wk-b", n_units=5))
            await until(lambda: position_is(last), timeout=60)
            rows = await readmodel.snapshot(engine)
            assert len(rows) == 17 and sum(1 for r in rows if r["programme_id"] == "wk-b") == 5
            assert await readmodel.position(engine) == last
            workers = children(proc.pid)  # the supervisor has replaced the killed one

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if alive(w)], "workers outlived their supervisor"
    finally:
        for pid in (proc.pid, *workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        await engine.dispose()
        await nc.close()
