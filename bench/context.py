"""What a benchmark gets from the runner (bench/__main__.py): its mode, a scratch directory, servers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.common import console
from bench.stack import BenchStack, StackPool

Size = TypeVar("Size", int, float)  # a count, or seconds


@dataclass
class Context:
    """What a benchmark gets from the runner: the mode, a scratch directory, servers, a log."""

    quick: bool
    work_dir: Path
    pool: StackPool
    keep: bool = False
    options: dict[str, str] = field(default_factory=dict)  # --opt key=value
    smoke: bool = False  # the smoke test: a fifth of the quick sizes, just to run every code path
    db: str = "sqlite"  # the services' databases: "sqlite" files or a fresh "postgres" database

    @asynccontextmanager
    async def stack(self) -> AsyncIterator[BenchStack]:
        """Temporal + NATS (+ policyflow processes on demand): own, or shared in quick mode."""
        stack = await self.pool.acquire(self.work_dir)
        try:
            yield stack
        finally:
            await self.pool.release(stack)

    def size(self, quick: Size, full: Size) -> Size:
        if self.smoke:
            return max(type(quick)(1), quick // 5)
        return quick if self.quick else full

    def log(self, message: str) -> None:
        console.log(message)

    @contextmanager
    def phase(self, what: str) -> Iterator[None]:
        """Log how long a set-up phase took (servers, processes, data)."""
        started = time.monotonic()
        yield
        console.log(f"  {what}: {time.monotonic() - started:.1f}s")
