"""The servers a benchmark starts: nats-server (JetStream, fsync always) and the Temporal dev server,
plus whichever policyflow processes (worker, services) its policyflow half needs, on free ports.

Both halves of a benchmark talk to the same servers: the raw half as the NATS admin user and a
plain Temporal client with its own worker process, the policyflow half through the services.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NatsClient
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.common import Child, missing_modules, python_child, require_modules, unique
from contracts.base import UserRole
from contracts.subjects import TASK_QUEUE
from deploy.local.servers import free_port
from deploy.local.stack import SERVICES, Stack, StackConfig
from services.shared.auth import ensure_keys, issue_token

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


async def start_policyflow(stack: BenchStack, *names: str) -> str | None:
    """Start the policyflow processes a half needs; None, or why that half is not available."""
    missing = missing_modules(*(PROCESS_MODULES[n] for n in names))
    if missing:
        return f"not available: {', '.join(missing)} not landed"
    try:
        await stack.start(*names)
    except RuntimeError as exc:
        for name in names:
            stack.stop_process(name)
        return f"not available: {one_line(exc)}"
    return None


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


class BenchStack:
    """nats-server + Temporal dev server, and policyflow processes started on demand."""

    def __init__(self, var_dir: Path, temporal: bool = True) -> None:
        """Without `temporal`, only nats-server starts (for benchmarks that need no workflows)."""
        self.var_dir = var_dir
        ports = {name: free_port() for name, _, _ in SERVICES}
        self.config = StackConfig(
            var_dir=var_dir,
            nats_port=free_port(),
            temporal_port=free_port(),
            temporal_ui_port=free_port(),
            ports=ports,
            headless=True,
            temporal_address=None if temporal else "127.0.0.1:9",  # set: Stack starts no server
        )
        self.stack = Stack(self.config)
        self.children: dict[str, Child] = {}
        self._temporal: Client | None = None

    # --- servers ---

    async def start_servers(self) -> None:
        ensure_keys(self.key_dir)
        await asyncio.to_thread(self.stack.start_servers)

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

    def spawn(self, name: str, **env: str) -> Child:
        """Start one policyflow process without waiting for it."""
        module = PROCESS_MODULES[name].removesuffix(".__main__")
        env = {**self.stack.child_env(), "NATS_URL": self.stack.nats_url_for(name), **env}
        child = python_child(name, module, [], self.var_dir / "logs", **env)
        self.children[name] = child.start()
        return child

    async def start(self, *names: str) -> None:
        """Start policyflow processes (worker / assignment / progress / audit) and wait until ready."""
        require_processes(*names)
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

    async def close(self) -> None:
        for name in list(reversed(self.children)):
            self.stop_process(name)
        await asyncio.to_thread(self.stack.stop)


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


async def gather_limited(limit: int, jobs: Sequence[Any]) -> list[Any]:
    """Await coroutines with at most `limit` in flight."""
    sem = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with sem:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))
