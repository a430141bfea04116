"""The real stack as subprocesses, with the knobs a fault test needs.

`FaultStack` starts nats-server (JetStream file store, `sync_interval: always`, NATS users
and permissions) and the Temporal dev server (SQLite file) through `deploy.local.stack`, then
the worker and the three services as their own processes, each as its own NATS user. Any of
them can be killed with SIGKILL and started again on the same ports and state, or paused with
SIGSTOP and resumed with SIGCONT. Everything is logged under the var dir, so tests can read
what each process said (`log_text`).

The clients and the readers the invariants are checked with (stream, ledger, verify, replay, the
read model, quiescence) come from its base, `StackReaders` (tests/faults/stack_readers.py).
"""

from __future__ import annotations

import asyncio
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
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.subjects import AUDIT_DURABLE, EVENT_STREAM, INBOX_DURABLE, READ_MODEL_DURABLE
from deploy.local.servers import Server, free_port, port_open, wait_for_port
from deploy.local.stack import SERVICES, Stack, StackConfig
from services.shared.auth import ensure_keys
from tests.faults.figures import say
from tests.faults.stack_readers import StackReaders
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
class FaultStack(StackReaders):
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

    # ---- Temporal and the logs ----------------------------------------------------------------

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
