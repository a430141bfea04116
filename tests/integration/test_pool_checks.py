"""PostgreSQL pools (services/shared/db.py): a connection the server dropped while it sat in the
pool is replaced at checkout, and one in steady use is handed out without a check of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.shared import db
from tests.databases import fresh_pg_database, postgres_unavailable
from tests.support.requirements import require

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    require(await postgres_unavailable())
    async with fresh_pg_database("pf_pool") as url:
        yield url


def counted_engine(url: str, idle: float, monkeypatch: pytest.MonkeyPatch) -> tuple[AsyncEngine, list[int]]:
    """One connection at most, checked when idle longer than `idle`; the list counts the checks."""
    engine = create_async_engine(db.async_url(url), pool_size=1, max_overflow=0)
    db.ping_when_idle(engine, idle)
    checks: list[int] = []
    ping = engine.dialect.do_ping

    def counting(dbapi_conn: Any) -> bool:
        checks.append(1)
        return ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return engine, checks


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_dropped_while_idle_is_replaced_at_checkout(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, checks = counted_engine(pg_url, 0.0, monkeypatch)  # every returned connection counts as idle
    try:
        first = await backend_pid(engine)
        admin = await asyncpg.connect(pg_url)  # a plain libpq URL
        try:  # the server ends the pooled connection's session (as a restart would); waits until it is gone
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", first)
        finally:
            await admin.close()
        second = await backend_pid(engine)  # no error: the dead connection failed its check, a new one served
        assert second != first
        assert len(checks) == 1  # the fresh connection was not checked again
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_checked(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, checks = counted_engine(pg_url, 3600.0, monkeypatch)
    try:
        pids = {await backend_pid(engine) for _ in range(5)}
        assert len(pids) == 1 and checks == []  # the same connection, five times, no round trip beside the query
    finally:
        await engine.dispose()
