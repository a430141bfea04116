"""One active notifier per database: only the holder of the lease consumes the stream and sends.

Two notifier processes on one database would otherwise both send the same due rows, and a
restarting one would move the durable consumer under the other's feet. Every process serves HTTP;
the holder alone runs the subscriber and the sender. The lease is a lock its holder's death
releases, however it dies: on SQLite (the embedded default, one machine) an exclusive flock on a
file beside the database; on PostgreSQL a session advisory lock on a connection of its own, which
the server drops when that connection goes. The others try again every NOTIFY_LEASE_RETRY_SECONDS.
A holder that loses its PostgreSQL connection stops consuming and sending, then waits like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger("notify.lease")
Step = Callable[[], Awaitable[None]]


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key from the consumer's name."""
    return int.from_bytes(hashlib.sha256(f"policyflow-notify:{name}".encode()).digest()[:8], "big", signed=True)


class Lease:
    def __init__(self, engine: AsyncEngine, name: str, activate: Step, deactivate: Step, retry: float = 1.0) -> None:
        self.engine, self.name, self.activate, self.deactivate, self.retry = engine, name, activate, deactivate, retry
        self.held = False
        self._file: IO[bytes] | None = None
        self._conn: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

    def _lock_path(self) -> Path:
        database = self.engine.url.database or "notify.sqlite"
        return Path(f"{database}.notify-lease")

    async def _try(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            conn = await self.engine.connect()
            try:
                got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(self.name)})).scalar()
                await conn.commit()
            except Exception:
                await conn.close()
                raise
            if got:
                self._conn = conn
                return True
            await conn.close()
            return False
        path = self._lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "ab")  # noqa: SIM115 - held open as long as the lock
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._file = f
        return True

    async def _alive(self) -> bool:
        """Whether the lock is still ours: a PostgreSQL advisory lock lives as long as its connection."""
        if self._conn is None:
            return True
        try:
            await self._conn.execute(text("SELECT 1"))
            await self._conn.commit()
        except Exception:  # noqa: BLE001 - any failure: the connection, and with it the lock, may be gone
            return False
        return True

    async def _release(self) -> None:
        self.held = False
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()  # a closed session drops its advisory locks
            self._conn = None

    async def _run(self) -> None:
        while True:
            if not self.held:
                try:
                    if await self._try():
                        self.held = True
                        log.info("notify.lease_taken", pid=os.getpid())
                        await self.activate()
                except Exception:  # the database or NATS: let go, try again
                    log.exception("notify.lease_start_failed")
                    await self._stop_active()
            elif not await self._alive():
                log.warning("notify.lease_lost", pid=os.getpid())
                await self._stop_active()
            await asyncio.sleep(self.retry)

    async def _stop_active(self) -> None:
        if self.held:
            with contextlib.suppress(Exception):
                await self.deactivate()
        await self._release()

    async def start(self) -> None:
        """Take the lease now if it is free (so a lone process starts at once), else keep trying."""
        try:
            if await self._try():
                self.held = True
                log.info("notify.lease_taken", pid=os.getpid())
                await self.activate()
        except Exception:
            log.exception("notify.lease_start_failed")
            await self._stop_active()
        self._task = asyncio.create_task(self._run(), name="notify-lease")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_active()

    def describe(self) -> dict[str, Any]:
        return {"active": self.held}
