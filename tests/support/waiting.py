"""Waiting for what happens in another process or server: poll a probe until it holds."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import nats.errors

# What a probe may raise while a server starts, restarts or elects a leader: "not yet", asked again.
NOT_YET = (httpx.HTTPError, OSError, TimeoutError, nats.errors.Error)


async def until(
    probe: Callable[[], Any], what: str = "the condition", timeout: float = 45.0, interval: float = 0.1
) -> Any:
    """Call `probe` (plain or async) until it returns something truthy, and return that.

    Fails after `timeout` seconds, naming `what` and the last value or error seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = probe()
            last = await result if inspect.isawaitable(result) else result
        except NOT_YET as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s; last: {last!r}")
        await asyncio.sleep(interval)


class WithProgressService(Protocol):
    progress_url: str


async def caught_up(stack: WithProgressService, seq: int, timeout: float = 45.0) -> None:
    """Wait until the progress read model has applied the event stream up to position `seq`."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def applied() -> bool:
            r = await client.get(f"{stack.progress_url}/healthz")
            return r.status_code == 200 and int(r.json()["read_model_position"]) >= seq

        await until(applied, f"the read model at stream position {seq}", timeout)
