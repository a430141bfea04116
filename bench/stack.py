"""The servers a benchmark starts: nats-server (JetStream, fsync always) and the Temporal dev server,
plus whichever policyflow processes (worker, services) its policyflow half needs, on free ports.

Both halves of a benchmark talk to the same servers: the raw half as the NATS admin user and a
plain Temporal client with its own worker process, the policyflow half through the services.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import nats
from nats.aio.client import Client as NatsClient
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench import pg
from bench.common import (
    Child,
    console,
    missing_modules,
    proc_cpu,
    python_child,
    require_modules,
    tree_cpu,
    unique,
)
from contracts.base import UserRole
from contracts.subjects import EVENT_STREAM, TASK_QUEUE
from deploy.local.servers import free_port
from deploy.local.stack import SERVICES, Stack, StackConfig
from services.shared.auth import ensure_keys, issue_token

ALL_PROCESSES = ("worker", "assignment", "progress", "audit")
PROCESS_MODULES = {
    "worker": "workflows.worker",
    "assignment": "services.assignment.__main__",
    "progress": "services.progress.__main__",
    "audit": "services.audit.__main__",
}


def require_processes(*names: str) -> None:
    require_modules(*(PROCESS_MODULES[n] for n in names))


def one_line(exc: BaseException) -> str:
    """First and last line of an error (a child's log tail ends with the actual exception)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    errors = [line for line in lines[1:] if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line)]
    last = errors[-1] if errors else lines[-1]
    return lines[0] if len(lines) == 1 else f"{lines[0]} ... {last}"


async def connect_temporal(address: str, attempts: int = 150) -> Client:
    last: Exception | None = None
    for _ in range(attempts):
        try:
            client = await Client.connect(address, data_converter=pydantic_data_converter)
            await client.count_workflows()  # the namespace answers only once the server is ready
            return client
        except Exception as exc:  # noqa: BLE001 - retried until ready
            last = exc
            await asyncio.sleep(0.2)
    raise RuntimeError(f"Temporal at {address} not ready: {last}")


async def wait_for_pollers(client: Client, task_queue: str, child: Child | None = None, timeout: float = 90.0) -> None:
    """A worker is ready once it polls its task queue (workers have no port to wait for)."""
    deadline = time.monotonic() + timeout
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.name} exited before polling {task_queue}:\n{child.tail()}")
        response = await client.workflow_service.describe_task_queue(request)
        if response.pollers:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no worker polls {task_queue} after {timeout:.0f}s")


LEDGER_WAIT = 6 * 3600.0  # how long wait_ledger waits by default


class BenchStack:
    """nats-server + Temporal dev server, and policyflow processes started on demand."""

    def __init__(self, var_dir: Path, temporal: bool = True, db: str = "sqlite") -> None:
        """Without `temporal`, only nats-server starts (for benchmarks that need no workflows).
        `db`: where the services keep their tables, SQLite files under `var_dir` or a fresh
        PostgreSQL database (bench/pg.py), created with the servers and dropped on close."""
        self.var_dir = var_dir
        self.with_temporal = temporal
        self.db = db
        self.pg_url: str | None = None
        self.stack = Stack(self._config())
        self.children: dict[str, Child] = {}
        self.unavailable: dict[str, str] = {}  # process -> why it cannot run here
        self._temporal: Client | None = None
        self._raw_worker: RawWorker | None = None

    def _config(self) -> StackConfig:
        return StackConfig(
            var_dir=self.var_dir,
            nats_port=free_port(),
            temporal_port=free_port(),
            temporal_ui_port=free_port(),
            ports={name: free_port() for name, _, _ in SERVICES},
            headless=True,
            temporal_address=None if self.with_temporal else "127.0.0.1:9",  # set: Stack starts no server
        )

    @property
    def config(self) -> StackConfig:
        return self.stack.config

    # --- servers ---

    async def start_servers(self, attempts: int = 3) -> None:
        """Start the servers; on a port taken meanwhile by someone else, again on fresh ports."""
        ensure_keys(self.key_dir)
        if self.db == "postgres" and self.pg_url is None:
            self.pg_url = await pg.create_database()
        for attempt in range(attempts):
            try:
                await asyncio.to_thread(self.stack.start_servers)
                return
            except RuntimeError as exc:
                await asyncio.to_thread(self.stack.stop)
                log = self.var_dir / "nats" / "nats.log"
                tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
                if attempt == attempts - 1:
                    raise RuntimeError(f"{exc}; nats log: {' | '.join(tail)}") from exc
                console.log(f"  servers did not start ({one_line(exc)}); again on fresh ports")
                self.stack = Stack(self._config())

    def database_url(self, service: str) -> str:
        """The service's database: its SQLite file (as the service picks it) or the stack's PostgreSQL."""
        return self.pg_url or f"sqlite:///{self.var_dir / f'{service}.sqlite'}"

    @property
    def key_dir(self) -> Path:
        return self.var_dir / "keys"

    @property
    def temporal_address(self) -> str:
        return self.stack.temporal_address

    @property
    def nats_admin_url(self) -> str:
        return self.stack.nats_url_for("admin")

    async def temporal(self) -> Client:
        if self._temporal is None:
            self._temporal = await connect_temporal(self.temporal_address)
        return self._temporal

    async def nats(self) -> NatsClient:
        return await nats.connect(self.nats_admin_url, max_reconnect_attempts=3)

    # --- policyflow processes ---

    def url(self, service: str) -> str:
        return self.stack.url(service)

    def token(self, role: UserRole, unit_id: str | None = None) -> str:
        return issue_token(self.key_dir, role, unit_id, sub=unique(f"bench-{role.value}"))

    def headers(self, role: UserRole, unit_id: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, unit_id)}"}

    def spawn(self, name: str, profile_to: Path | None = None, **env: str) -> Child:
        """Start one policyflow process without waiting for it (under cProfile, writing `profile_to`)."""
        module = PROCESS_MODULES[name].removesuffix(".__main__")
        env = {
            **self.stack.child_env(),
            "NATS_URL": self.stack.nats_url_for(name),
            "POLICYFLOW_ASSIGNMENT_URL": self.url("assignment"),
            **({"DATABASE_URL": self.pg_url} if self.pg_url else {}),
            **env,
        }
        child = python_child(name, module, [], self.var_dir / "logs", **env)
        if profile_to is not None:
            child.argv[1:1] = ["-m", "cProfile", "-o", str(profile_to)]
        self.children[name] = child.start()
        return child

    async def start(self, *names: str) -> None:
        """Start policyflow processes (worker / assignment / progress / audit) and wait until ready."""
        require_processes(*names)
        names = tuple(n for n in names if not (n in self.children and self.children[n].alive()))
        for name in names:
            self.spawn(name)
        for name in names:
            if name == "worker":
                await wait_for_pollers(await self.temporal(), TASK_QUEUE, self.children[name])
            else:
                await self.wait_healthy(name)

    async def wait_healthy(self, service: str, timeout: float = 120.0) -> None:
        child = self.children[service]
        deadline = time.monotonic() + timeout
        last = ""
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if not child.alive():
                    raise RuntimeError(f"{service} exited:\n{child.tail()}")
                try:
                    r = await http.get(f"{self.url(service)}/healthz")
                    if r.status_code == 200:
                        return
                    last = f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    last = str(exc) or type(exc).__name__
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{service} not healthy after {timeout:.0f}s: {last}\n{child.tail()}")

    def stop_process(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child:
            child.stop()

    def pids(self) -> dict[str, int]:
        return {name: c.pid for name, c in self.children.items() if c.alive()}

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by every process of the stack, the raw worker and this one."""
        pids = self.pids()
        pids.update({s.name: s.proc.pid for s in self.stack.servers if s.proc is not None})
        if self._raw_worker is not None and self._raw_worker.child.alive():
            pids["raw-worker"] = self._raw_worker.child.pid
        # The whole tree of each (the progress service runs PROGRESS_WORKERS processes under one
        # supervisor); this process alone, since every other one here is its descendant.
        out = {name: tree_cpu(pid) for name, pid in pids.items()}
        out["bench"] = proc_cpu(os.getpid())
        return out

    async def policyflow(self, *names: str) -> str | None:
        """Start the policyflow processes a half needs (those not running yet); None, or why not."""
        known = [self.unavailable[n] for n in names if n in self.unavailable]
        if known:
            return known[0]
        missing = missing_modules(*(PROCESS_MODULES[n] for n in names))
        if missing:
            return f"not available: {', '.join(missing)} not landed"
        try:
            await self.start(*names)
        except RuntimeError as exc:
            reason = f"not available: {one_line(exc)}"
            for name in names:
                self.unavailable[name] = reason
                self.stop_process(name)
            return reason
        return None

    async def ledger_size(self) -> int:
        """Entries in the audit ledger (its /healthz says)."""
        async with httpx.AsyncClient(timeout=10.0) as http:
            r = await http.get(f"{self.url('audit')}/healthz")
            r.raise_for_status()
            return int(r.json().get("ledger_size", 0))

    async def wait_ledger(
        self,
        target: int,
        timeout: float = LEDGER_WAIT,
        tick: Callable[[], Awaitable[None]] | None = None,
        partial: bool = False,
    ) -> int:
        """Wait until the audit ledger holds `target` entries: the events of what was started are in.
        `tick` is awaited after each poll; with `partial`, the timeout returns the size reached
        instead of raising."""  # fmt: skip
        deadline = time.monotonic() + timeout
        while (size := await self.ledger_size()) < target:
            if time.monotonic() > deadline:
                if partial:
                    return size
                raise RuntimeError(f"ledger at {size} of {target} entries after {timeout:.0f}s")
            await asyncio.sleep(0.25)
            if tick is not None:
                await tick()
        return size

    async def raw_worker(self) -> RawWorker:
        """The raw halves' worker (one per stack), started on first use."""
        if self._raw_worker is None:
            self._raw_worker = await RawWorker(self).start()
        return self._raw_worker

    async def settle(self, quiet: float = 1.0, timeout: float = 180.0) -> None:
        """Wait until the event stream stops growing and every consumer of it has caught up."""
        nc = await self.nats()
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + timeout
            last, since = -1, time.monotonic()
            while time.monotonic() < deadline:
                seq = int((await js.stream_info(EVENT_STREAM)).state.last_seq)
                behind = 0
                for info in await js.consumers_info(EVENT_STREAM):
                    behind += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
                if seq != last or behind:
                    last, since = seq, time.monotonic()
                elif time.monotonic() - since >= quiet:
                    return
                await asyncio.sleep(0.2)
        finally:
            await nc.close()

    async def close(self) -> None:
        if self._raw_worker is not None:
            self._raw_worker.stop()
        for name in list(reversed(self.children)):
            self.stop_process(name)
        await asyncio.to_thread(self.stack.stop)
        if self.pg_url is not None:
            await pg.drop_database(self.pg_url)
            self.pg_url = None


class StackPool:
    """Stacks for the benchmarks that need Temporal: one per benchmark, or (quick) one for the run.

    Sharing in quick mode saves starting the Temporal dev server, the worker and three services
    for every benchmark, which is what keeps `--quick` under three minutes on two cores.
    """

    def __init__(self, root: Path, shared: bool, db: str = "sqlite") -> None:
        self.root = root
        self.shared = shared
        self.db = db
        self._shared: BenchStack | None = None

    async def acquire(self, work_dir: Path) -> BenchStack:
        if self.shared and self._shared is not None:
            return self._shared
        stack = BenchStack((self.root if self.shared else work_dir) / "stack", db=self.db)
        await stack.start_servers()
        await stack.temporal()
        if self.shared:
            self._shared = stack
        return stack

    async def release(self, stack: BenchStack) -> None:
        if stack is not self._shared:
            await stack.close()

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()
            self._shared = None


class RawWorker:
    """The raw halves' Temporal worker, in a process of its own (bench.raw_worker)."""

    def __init__(self, stack: BenchStack, task_queue: str | None = None) -> None:
        self.stack = stack
        self.task_queue = task_queue or unique("bench-raw")
        args = [stack.temporal_address, self.task_queue]
        self.child = python_child("raw-worker", "bench.raw_worker", args, stack.var_dir / "logs")

    async def start(self) -> RawWorker:
        self.child.start()
        await wait_for_pollers(await self.stack.temporal(), self.task_queue, self.child)
        return self

    def stop(self) -> None:
        self.child.stop()
