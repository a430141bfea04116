"""Service databases for tests: SQLite files, and PostgreSQL when it is reachable.

The `database` fixture runs a test twice: on SQLite (a file per service in the test's temp
dir) and on PostgreSQL (marked `postgres`), where the test gets a fresh database
`pf_test_<hex>` that the three services share (each with its own alembic version table),
dropped afterwards. Without a reachable server the PostgreSQL case is skipped, saying so (and
fails under CI, where the server is part of the machine: tests/support/requirements.py).

The server is POLICYFLOW_TEST_POSTGRES (an admin URL, default
postgresql://postgres@127.0.0.1:5432/test: trust auth on this machine).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine.url import make_url

from services.shared.db import make_engine, sqlite_url
from tests.support.requirements import require

PG_ADMIN_URL = os.environ.get("POLICYFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_reachable: dict[str, str | None] = {}


def _dsn(url: str) -> str:
    """The plain libpq form asyncpg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def postgres_unavailable() -> str | None:
    """None when the server answers, else why not (the skip message); asked once per session."""
    if PG_ADMIN_URL not in _reachable:
        try:
            conn = await asyncpg.connect(_dsn(PG_ADMIN_URL), timeout=3)
            await conn.close()
            _reachable[PG_ADMIN_URL] = None
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            printable = make_url(PG_ADMIN_URL).render_as_string(hide_password=True)
            _reachable[PG_ADMIN_URL] = (
                f"PostgreSQL not reachable at {printable} ({type(exc).__name__}: {exc}); "
                "set POLICYFLOW_TEST_POSTGRES to run the PostgreSQL cases"
            )
    return _reachable[PG_ADMIN_URL]


@asynccontextmanager
async def fresh_pg_database(prefix: str = "pf_test") -> AsyncIterator[str]:
    """CREATE DATABASE <prefix>_<hex>; yields its URL; DROP DATABASE ... WITH (FORCE) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_dsn(PG_ADMIN_URL), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(PG_ADMIN_URL).set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(_dsn(PG_ADMIN_URL), timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass(frozen=True)
class TestDatabase:
    """Where each service's tables live in one test."""

    backend: str  # "sqlite" or "postgresql"
    tmp: Path
    pg_url: str | None = None

    __test__ = False  # not a test class, whatever its name

    def url(self, service: str) -> str:
        if self.pg_url is not None:
            return self.pg_url
        return sqlite_url(self.tmp / f"{service}.sqlite")

    async def execute(self, service: str, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Run SQL behind the service's back (a tamperer's view); returns the rows, if any."""
        engine = make_engine(self.url(service))
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(sql), params or {})
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestDatabase]:
    if request.param == "sqlite":
        yield TestDatabase("sqlite", tmp_path)
        return
    require(await postgres_unavailable())
    async with fresh_pg_database() as url:
        yield TestDatabase("postgresql", tmp_path, url)
