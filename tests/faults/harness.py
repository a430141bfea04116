"""The real stack as subprocesses, with the knobs a fault test needs.

`FaultStack` starts nats-server (JetStream file store, `sync_interval: always`, NATS users
and permissions) and the Temporal dev server (SQLite file) through `deploy.local.stack`, then
the worker and the three services as their own processes, each as its own NATS user. Any of
them can be killed with SIGKILL and started again on the same ports and state, or paused with
SIGSTOP and resumed with SIGCONT. Everything is logged under the var dir, so tests can read
what each process said (`log_text`).

Readers for the invariants live here too: the event stream (as the NATS admin user, filtered
by programme), the audit ledger (NDJSON), replay, verify, the progress read model.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import DeliverPolicy
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.base import UserRole
from contracts.events import Event
from contracts.subjects import AUDIT_DURABLE, EVENT_STREAM, EVENT_SUBJECT_PREFIX, INBOX_DURABLE, READ_MODEL_DURABLE
from deploy.local.servers import Server, free_port, port_open, wait_for_port
from deploy.local.stack import SERVICES, Stack, StackConfig
from services.shared.auth import ensure_keys, issue_token
from tests.support import processes
from tests.support.waiting import until

PROCESSES = {
    "worker": "workflows.worker",
    "assignment": "services.assignment",
    "progress": "services.progress",
    "audit": "services.audit",
}
HUMAN_ROLES = {"department", "supervisor", "verifier", "auditor"}


def rounds() -> int:
    """FAULTS_ROUNDS (default 1): how many times each fault is injected, and how long scenarios run."""
    try:
        return max(1, int(os.environ.get("FAULTS_ROUNDS", "1")))
    except ValueError:
        return 1


def say(line: str = "") -> None:
    """Figures go to stdout (shown with `pytest -s`) and are kept for the report."""
    print(line, flush=True)


def table(title: str, rows: Iterable[tuple[str, object]]) -> None:
    say(f"\n== {title}")
    for name, value in rows:
        say(f"  {name:<52} {value}")


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log records in a process's output.

    A record may share its line with a plain stdlib log line written by another thread between the
    record and its newline (seen in the worker: `{...}INFO temporalio.workflow ...`), so each line is
    decoded from its first `{` as far as the JSON goes.
    """
    decoder = json.JSONDecoder()
    out = []
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            record, _ = decoder.raw_decode(line, start)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


@dataclass
class Proc:
    """One policyflow process: started, killed, restarted with the same environment."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def spawn(self) -> None:
        self.popen = processes.spawn(self.module, self.env, self.log)
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None and self.alive, f"{self.name} is not running"
        self.popen.send_signal(sig)

    def kill(self) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGCONT)  # a paused process dies just the same, but be sure
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(30)

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen is not None:
            processes.stop(self.popen, timeout=timeout)


@dataclass
class Fault:
    what: str
    target: str
    down_s: float
    at: float


@dataclass
class FaultStack:
    var_dir: Path
    stack: Stack = field(init=False)
    procs: dict[str, Proc] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    _temporal: Client | None = None

    def __post_init__(self) -> None:
        self.stack = Stack(
            StackConfig(
                var_dir=self.var_dir,
                nats_port=free_port(),
                temporal_port=free_port(),
                temporal_ui_port=free_port(),
                ports={name: free_port() for name, _, _ in SERVICES},
                headless=True,
            )
        )

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def key_dir(self) -> Path:
        return self.var_dir / "keys"

    @property
    def nats_server(self) -> Server:
        return next(s for s in self.stack.servers if s.name == "nats-server")

    @property
    def temporal_server(self) -> Server:
        return next(s for s in self.stack.servers if s.name == "temporal")

    async def start(self) -> FaultStack:
        ensure_keys(self.key_dir)  # before the services start, so they never race to create it
        await asyncio.to_thread(self.stack.start_servers)
        # Temporal's dev server takes random free ports for its own services: one of them may be a
        # port picked for ours before it started (the service then cannot listen, and its health
        # probe meets Temporal's gRPC). Such a port is picked again.
        for name, port in list(self.stack.config.ports.items()):
            if port_open(port):
                self.stack.config.ports[name] = free_port()
        env = self.stack.child_env()
        for name, module in PROCESSES.items():
            port = self.stack.config.ports.get(name, 0)
            child_env = {**env, "NATS_URL": self.stack.nats_url_for(name), "LOG_LEVEL": "INFO"}
            self.procs[name] = Proc(name, module, port, child_env, self.var_dir / "logs" / f"{name}.log")
        for proc in self.procs.values():
            proc.spawn()
        await asyncio.gather(*(self.ready(name) for name in self.procs))
        return self

    async def stop(self) -> None:
        running = [p.popen for p in self.procs.values() if p.popen is not None]
        await asyncio.to_thread(processes.stop, *running, timeout=20.0)
        for server in reversed(self.stack.servers):
            await asyncio.to_thread(server.stop)

    async def ready(self, name: str, timeout: float = 120.0) -> None:
        proc = self.procs[name]
        if name == "worker":
            await self._worker_started(proc, timeout)
            return
        await asyncio.to_thread(wait_for_port, proc.port, proc.popen, name, timeout)

        async def healthy() -> bool:
            assert proc.alive, f"{name} exited:\n{self.log_tail(name)}"
            async with httpx.AsyncClient(timeout=3.0) as http:
                return (await http.get(f"{self.url(name)}/healthz")).status_code == 200

        await until(healthy, f"{name} healthy", timeout)

    async def _worker_started(self, proc: Proc, timeout: float) -> None:
        async def started() -> bool:
            assert proc.alive, f"worker exited:\n{self.log_tail('worker')}"
            return self.log_text("worker").count('"worker_started"') >= proc.starts

        await until(started, "worker polling its task queue", timeout, interval=0.1)

    # ---- faults -------------------------------------------------------------------------------

    async def kill_and_restart(self, name: str, down: float = 0.5) -> Fault:
        """kill -9 a policyflow process, leave it dead for `down` seconds, start it again and wait for it."""
        t0 = time.monotonic()
        self.procs[name].kill()
        await asyncio.sleep(down)
        self.procs[name].spawn()
        await self.ready(name)
        return self._record("kill -9 + restart", name, t0)

    async def stall_then_kill_and_restart(self, name: str, database: str, wait: float = 10.0) -> Fault:
        """Stall a service's disk (an exclusive lock on its SQLite file) until it holds deliveries it
        has fetched but cannot commit, then kill -9 it, lift the stall and start it again: a crash
        mid-batch, made certain rather than left to timing."""
        t0 = time.monotonic()
        db = sqlite3.connect(self.var_dir / database, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            await asyncio.to_thread(db.execute, "BEGIN EXCLUSIVE")
            await asyncio.sleep(1.0)  # whatever it fetches from now on cannot be committed

            async def holding() -> int:
                return (await self.consumer_pending(name))[1]

            try:
                held = await until(holding, f"{name} holding uncommitted deliveries", wait, interval=0.1)
            except AssertionError:
                held = 0  # no traffic at that moment: an ordinary kill -9
            self.procs[name].kill()
        finally:
            db.execute("ROLLBACK")
            db.close()
        self.procs[name].spawn()
        await self.ready(name)
        return self._record(f"disk stall + kill -9 ({held} in flight)", name, t0)

    async def consumer_pending(self, name: str) -> tuple[int, int]:
        """(pending, ack pending) of the durable consumer a service reads with."""
        durable = {"audit": AUDIT_DURABLE, "progress": READ_MODEL_DURABLE, "assignment": INBOX_DURABLE}[name]
        nc = await self.nats_admin()
        try:
            info = await nc.jetstream().consumer_info(EVENT_STREAM, durable)
            return int(info.num_pending or 0), int(info.num_ack_pending or 0)
        finally:
            await nc.close()

    async def kill_and_restart_server(self, which: str, down: float = 0.5) -> Fault:
        """kill -9 nats-server or the Temporal dev server; same port, same state directory."""
        server = self.nats_server if which == "nats-server" else self.temporal_server
        t0 = time.monotonic()
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(down)
        await asyncio.to_thread(server.start, 90.0)
        if which == "temporal":
            await self.temporal_ready()
        return self._record("kill -9 + restart", which, t0)

    async def pause(self, name: str, seconds: float) -> Fault:
        """SIGSTOP a process for `seconds`, then SIGCONT: its connections stall, nothing is closed."""
        t0 = time.monotonic()
        self.procs[name].signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.procs[name].signal(signal.SIGCONT)
        return self._record("SIGSTOP/SIGCONT", name, t0)

    def _record(self, what: str, target: str, t0: float) -> Fault:
        fault = Fault(what, target, round(time.monotonic() - t0, 1), t0)
        self.faults.append(fault)
        say(f"  fault: {what:<34} {target:<12} back after {fault.down_s:.1f}s")
        return fault

    # ---- clients ------------------------------------------------------------------------------

    def url(self, service: str) -> str:
        return self.stack.url(service)

    def token(self, role: str, unit_id: str | None = None, sub: str | None = None) -> str:
        return issue_token(self.key_dir, UserRole(role), unit_id, sub=sub)

    def headers(self, role: str, unit_id: str | None = None, sub: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, unit_id, sub)}"}

    async def nats_admin(self) -> NatsClient:
        return await nats.connect(self.stack.nats_url_for("admin"), max_reconnect_attempts=-1, connect_timeout=5)

    async def temporal(self) -> Client:
        if self._temporal is None:
            self._temporal = await Client.connect(self.stack.temporal_address, data_converter=pydantic_data_converter)
        return self._temporal

    async def temporal_ready(self, timeout: float = 120.0) -> None:
        async def answers() -> bool:
            client = await self.temporal()
            await asyncio.wait_for(client.count_workflows(), 5)
            return True

        await until(answers, "Temporal answering after restart", timeout, interval=0.3)

    def log_text(self, name: str) -> str:
        path = self.var_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        return json_lines(self.log_text(name))

    def log_mark(self, name: str) -> int:
        """Where the log ends now; `log_since` reads what was written after it."""
        path = self.var_dir / "logs" / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def log_since(self, name: str, mark: int) -> list[dict[str, Any]]:
        path = self.var_dir / "logs" / f"{name}.log"
        with open(path, "rb") as f:
            f.seek(mark)
            return json_lines(f.read().decode(errors="replace"))

    def log_tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:])

    # ---- what the system holds ----------------------------------------------------------------

    async def stream_events(self, programme_id: str) -> list[tuple[int, Event]]:
        """(stream seq, event) of every message on the programme's subjects, read as the admin user."""
        subject = f"{EVENT_SUBJECT_PREFIX}.{programme_id}.>"
        nc = await self.nats_admin()
        try:
            js = nc.jetstream()
            info = await js.stream_info(EVENT_STREAM, subjects_filter=subject)
            expected = sum((info.state.subjects or {}).values())
            out: list[tuple[int, Event]] = []
            if expected == 0:
                return out
            sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
            try:
                while len(out) < expected:
                    msg = await sub.next_msg(timeout=10.0)
                    out.append((int(msg.metadata.sequence.stream), Event.model_validate_json(msg.data)))
            finally:
                await sub.unsubscribe()
            return out
        finally:
            await nc.close()

    async def stream_last_seq(self) -> int:
        nc = await self.nats_admin()
        try:
            return int((await nc.jetstream().stream_info(EVENT_STREAM)).state.last_seq)
        finally:
            await nc.close()

    async def consumers_idle(self) -> dict[str, tuple[int, int]]:
        """(pending, ack pending) of every durable on the event stream: (0, 0) when all is consumed."""
        nc = await self.nats_admin()
        try:
            js = nc.jetstream()
            out = {}
            for info in await js.consumers_info(EVENT_STREAM):
                if info.config.durable_name:  # not the ephemeral readers (ours among them), which linger a while
                    out[str(info.name)] = (int(info.num_pending or 0), int(info.num_ack_pending or 0))
            return out
        finally:
            await nc.close()

    async def ledger(
        self, http: httpx.AsyncClient, programme_id: str | None = None, refusals: bool = False
    ) -> list[dict[str, Any]]:
        """Ledger entries (NDJSON export form), optionally only those of one programme; the facts, and
        the refused requests' entries (`AccessRefused`, which no stream message matches) if asked."""
        headers = {**self.headers("auditor"), "Accept": "application/x-ndjson"}
        r = await http.get(f"{self.url('audit')}/v1/audit/events", headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        rows = [json.loads(line) for line in r.text.splitlines() if line.strip()]
        return [
            row
            for row in rows
            if (programme_id is None or row["programme_id"] == programme_id)
            and (refusals or row["type"] != "AccessRefused")
        ]

    async def ledger_size(self, http: httpx.AsyncClient) -> int:
        r = await http.get(f"{self.url('audit')}/healthz", timeout=10)
        return int(r.json()["ledger_size"])

    async def read_model_position(self, http: httpx.AsyncClient) -> int:
        r = await http.get(f"{self.url('progress')}/healthz", timeout=10)
        return int(r.json()["read_model_position"])

    async def verify(self, http: httpx.AsyncClient) -> dict[str, Any]:
        r = await http.get(f"{self.url('audit')}/v1/audit/verify", headers=self.headers("auditor"), timeout=60)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def replay(self, http: httpx.AsyncClient, programme_id: str) -> dict[str, dict[str, Any]]:
        as_of = dt.datetime.now(dt.UTC).isoformat()
        r = await http.get(
            f"{self.url('audit')}/v1/audit/replay",
            params={"as_of": as_of},
            headers=self.headers("auditor"),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return {s["assignment_id"]: s for s in r.json()["items"] if s["programme_id"] == programme_id}

    async def gaps(self, http: httpx.AsyncClient, programme_id: str) -> list[dict[str, Any]]:
        r = await http.get(f"{self.url('audit')}/v1/audit/gaps", headers=self.headers("auditor"), timeout=30)
        assert r.status_code == 200, r.text
        return [
            g
            for g in r.json()["items"]
            if str(g["stream_key"]).split(".")[0].removeprefix("programme:") == programme_id
        ]

    async def workflow_status(self, http: httpx.AsyncClient, assignment_id: str) -> dict[str, Any]:
        r = await http.get(
            f"{self.url('progress')}/v1/assignments/{assignment_id}", headers=self.headers("supervisor"), timeout=60
        )
        assert r.status_code == 200, f"{assignment_id}: {r.status_code} {r.text}"
        return dict(r.json())

    async def status_page(self, http: httpx.AsyncClient, programme_id: str) -> dict[str, dict[str, Any]]:
        r = await http.get(
            f"{self.url('progress')}/v1/status",
            params={"programme_id": programme_id, "limit": 500},
            headers=self.headers("supervisor"),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return {item["assignment_id"]: item for item in r.json()["items"]}

    def read_model_reports(self, programme_id: str) -> dict[str, tuple[int, float]]:
        """(reports, percent) per assignment straight from the progress read model's rows (read-only)."""
        path = self.var_dir / "progress.sqlite"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            table_name = next(t for t in tables if t.endswith("_assignments"))
            rows = db.execute(
                f"select assignment_id, reports, percent from {table_name} where programme_id = ?",
                (programme_id,),
            ).fetchall()
        return {aid: (int(n), float(p)) for aid, n, p in rows}

    async def quiesce(self, http: httpx.AsyncClient, programme_id: str, timeout: float = 180.0) -> dict[str, int]:
        """Wait until the ledger holds every distinct event of the programme that the stream holds, the
        read model has caught up with the stream's last message, every durable consumer (ledger, read
        model, inbox) has nothing pending or unacknowledged, and nothing moved for a second."""
        last: dict[str, int] = {}

        async def settled() -> bool:
            nonlocal last
            stream = await self.stream_events(programme_id)
            now = {
                "stream_last_seq": await self.stream_last_seq(),
                "stream_messages": len(stream),
                "stream_distinct": len({e.event_id for _, e in stream}),
                "ledger_rows": len(await self.ledger(http, programme_id)),
                "read_model_position": await self.read_model_position(http),
                "consumers_busy": sum(1 for busy in (await self.consumers_idle()).values() if busy != (0, 0)),
            }
            done = (
                now["ledger_rows"] == now["stream_distinct"]
                and now["read_model_position"] == now["stream_last_seq"]
                and now["consumers_busy"] == 0
                and now == last
            )
            last = now
            if os.environ.get("FAULTS_DEBUG"):
                say(f"  quiesce {time.monotonic():.1f} {now} {await self.consumers_idle()}")
            return done

        await until(settled, f"quiescence of {programme_id}", timeout, interval=1.0)
        return last


class Clock:
    """Seconds per phase of a test, for the figures."""

    def __init__(self) -> None:
        self.t = time.monotonic()
        self.laps: list[tuple[str, float]] = []

    def lap(self, what: str) -> None:
        now = time.monotonic()
        self.laps.append((what, round(now - self.t, 1)))
        self.t = now


def duplicates(values: Iterable[str]) -> dict[str, int]:
    return {k: n for k, n in Counter(values).items() if n > 1}
