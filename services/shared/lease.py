"""One active holder per database: a lease that runs a consumer (or a sender) in one process only.

Several processes on one database (the progress service's HTTP workers, two notifiers) all serve
HTTP, but one at a time consumes the stream: competing fetches of one durable would hand each
process part of it, and two senders would send the same rows. The lease is a lock its holder's
death releases, however it dies: on PostgreSQL a session advisory lock on a connection of its
own, which the server drops when that connection goes; elsewhere (SQLite, the embedded default on
one machine) an exclusive flock on a file beside the database. The others try again every `retry`
seconds. A holder that loses its PostgreSQL connection stops, then waits like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import structlog
from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.shared.db import async_url

log = structlog.get_logger("lease")
Step = Callable[[], Awaitable[None]]


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key from the lease's name."""
    return int.from_bytes(hashlib.sha256(f"policyflow:{name}".encode()).digest()[:8], "big", signed=True)


def lock_file(database_url: str, name: str) -> Path:
    """The lock file of lease `name` on a database: the SQLite file's neighbour, else a file in
    the temp directory named by a digest of the URL (with its password) and the name."""
    url = make_url(async_url(database_url))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(f"{url.database}.{name}.lock")
    key = hashlib.sha256(f"{url.render_as_string(hide_password=False)}|{name}".encode())
    return Path(tempfile.gettempdir()) / f"policyflow-{key.hexdigest()[:24]}.{name}.lock"


def try_exclusive_lock(path: Path) -> IO[bytes] | None:
    """An exclusive flock on `path`, held until the returned file is closed; None if it is taken.

    Each call opens the file anew, so it excludes other calls in this process as well as other
    processes; the kernel drops the lock when its holder dies, however it dies.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "ab")  # noqa: SIM115 - held open as long as the lock
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


class Lease:
    """Run `activate` while this process holds the lease named `name`, `deactivate` when it lets go.

    `what` names the holder in the log (`<what>.lease_taken`, `<what>.lease_held_elsewhere`);
    `lock_path` is the lock file where the database is not PostgreSQL.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        name: str,
        activate: Step,
        deactivate: Step,
        lock_path: Path,
        what: str,
        retry: float = 1.0,
    ) -> None:
        self.engine, self.name, self.activate, self.deactivate, self.retry = engine, name, activate, deactivate, retry
        self.lock_path, self.what = lock_path, what
        self.held = False
        self._file: IO[bytes] | None = None
        self._conn: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

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
        self._file = try_exclusive_lock(self.lock_path)
        return self._file is not None

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
                        log.info(f"{self.what}.lease_taken", pid=os.getpid(), name=self.name)
                        await self.activate()
                except Exception:  # the database or NATS: let go, try again
                    log.exception(f"{self.what}.lease_start_failed")
                    await self._stop_active()
            elif not await self._alive():
                log.warning(f"{self.what}.lease_lost", pid=os.getpid())
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
                log.info(f"{self.what}.lease_taken", pid=os.getpid(), name=self.name)
                await self.activate()
            else:
                log.info(f"{self.what}.lease_held_elsewhere", pid=os.getpid(), name=self.name)
        except Exception:
            log.exception(f"{self.what}.lease_start_failed")
            await self._stop_active()
        self._task = asyncio.create_task(self._run(), name=f"{self.what}-lease")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_active()

    def describe(self) -> dict[str, Any]:
        return {"active": self.held}
