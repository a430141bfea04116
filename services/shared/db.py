"""Async database engines: SQLite (aiosqlite, WAL) by default, PostgreSQL (asyncpg) by DATABASE_URL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# PostgreSQL: the most connections an engine opens. The pool keeps every one it opened: with a
# smaller pool and overflow, a burst of requests returned connections faster than waiters took
# them, the surplus was closed and reopened on the next burst (a PostgreSQL backend started, and
# TLS tried, for about one request in twenty under 50 clients).
POOL_SIZE = 30
# A connection idle longer than this is checked (a `;` round trip) before it is handed out: one
# the server dropped meanwhile (a restart, an idle timeout) is replaced, and the pool with it.
# One in steady use is not: SQLAlchemy's pre-ping of every checkout was three round trips
# (BEGIN, `;`, ROLLBACK) for answers that need one.
IDLE_BEFORE_PING_S = 1.0


def async_url(url: str) -> str:
    """Accept the usual spellings and pick the async driver."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def sqlite_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def make_engine(url: str) -> AsyncEngine:
    url = async_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # durable: fsync at each commit
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0)
    ping_when_idle(engine)
    return engine


def ping_when_idle(engine: AsyncEngine, idle: float = IDLE_BEFORE_PING_S) -> None:
    """Check a pooled connection at checkout when it was returned more than `idle` seconds ago; a
    failed check invalidates the pool, as SQLAlchemy's pre-ping does, and the checkout goes on
    with a new connection (the pool's `checkout` event contract)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")  # none: fresh from connect()
        if returned is None or time.monotonic() - returned < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as error:  # whatever the reason, this connection is unusable
            raise exc.InvalidatePoolError(f"a pooled connection failed its check: {error}") from error
