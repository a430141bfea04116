"""One ledger writer per database: the active audit consumer holds a lock, the others wait.

Several audit service replicas may run against one ledger (for reads and for fail-over), but
only one of them consumes the stream and appends: the chain is built from the in-memory head,
and its order must be the stream's order.

- PostgreSQL: a session advisory lock, `pg_try_advisory_lock(key)`, taken on a connection the
  writer keeps for as long as it writes. The others poll for it as hot standbys; when the
  writer's session ends (its process stops, is killed, or loses the connection) PostgreSQL
  releases the lock and a standby takes over, reading the head and the tracking position
  afresh. Each ingest transaction first checks (`fence`) that this writer's lock session still
  holds the lock, so a writer that lost its session cannot append. Should a stale writer
  commit in the instant between the check and its commit, the next writer's first insert
  collides on the gapless `ledger_seq` primary key and is retried from the new head: the chain
  never forks.
- SQLite: an exclusive `flock` on `<database file>.writer.lock` (replicas share a file only
  on one machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger("audit.writer")


class WriterLockLost(RuntimeError):
    """This process no longer holds the ledger writer lock: it must not append."""


def lock_key(name: str) -> int:
    digest = hashlib.sha256(f"policyflow:audit-ledger-writer:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class WriterLock:
    def __init__(self, engine: AsyncEngine, name: str, poll: float = 0.5, keepalive: float = 2.0) -> None:
        self.engine = engine
        self.key = lock_key(name)
        self.poll = poll
        self.keepalive = keepalive
        self.held = False
        self.on_lost: Callable[[], Awaitable[None]] | None = None
        self._conn: AsyncConnection | None = None
        self._pid = 0
        self._fd: int | None = None
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def acquire(self) -> None:
        """Wait (polling) until this process is the writer."""
        if self.held:
            return
        if self.postgres:
            await self._acquire_pg()
        elif (path := _sqlite_path(self.engine)) is not None:
            await self._acquire_file(path)
        self.held = True
        log.info("writer.lock_acquired", dialect=self.engine.dialect.name)

    async def _acquire_pg(self) -> None:
        waiting = False
        while True:
            conn = await self.engine.connect()
            try:
                pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
                while True:
                    got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})).scalar_one()
                    await conn.commit()  # the session lock outlives the transaction; no idle transaction
                    if got:
                        self._conn, self._pid = conn, pid
                        self._watchdog = asyncio.create_task(self._watch(), name="audit-writer-lock-watchdog")
                        return
                    if not waiting:
                        log.info("writer.standby", reason="another audit consumer holds the ledger writer lock")
                        waiting = True
                    await asyncio.sleep(self.poll)
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.close()
                raise

    async def _acquire_file(self, path: Path) -> None:
        fd = os.open(f"{path}.writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        waiting = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self._fd = fd
                    return
                except BlockingIOError:
                    if not waiting:
                        log.info("writer.standby", reason="another audit consumer holds the ledger writer lock")
                        waiting = True
                    await asyncio.sleep(self.poll)
        except BaseException:
            os.close(fd)
            raise

    async def _watch(self) -> None:
        """Notice a lost lock session within `keepalive` seconds, and hand over."""
        while True:
            await asyncio.sleep(self.keepalive)
            try:
                assert self._conn is not None
                await self._conn.execute(text("SELECT 1"))
                await self._conn.commit()
            except Exception as exc:  # noqa: BLE001 - any failure means the session (and its lock) may be gone
                log.error("writer.lock_lost", error=str(exc)[:300])
                self.held = False
                await self._drop_conn()
                if self.on_lost is not None:
                    await self.on_lost()
                return

    async def fence(self, conn: AsyncConnection) -> None:
        """Inside an ingest transaction: raise unless our lock session still holds the lock."""
        if not self.postgres:
            return
        if not self.held:
            raise WriterLockLost("not the ledger writer")
        query = text(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = :pid "
            "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
        )
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        row = (await conn.execute(query, {"pid": self._pid, "hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF})).first()
        if row is None:
            self.held = False
            raise WriterLockLost("the ledger writer lock is no longer held by this process")

    async def release(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                await self._conn.commit()
            await self._drop_conn()
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
        self.held = False

    async def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # never back into the pool: it may hold the lock
            with contextlib.suppress(Exception):
                await conn.close()


def _sqlite_path(engine: AsyncEngine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)
