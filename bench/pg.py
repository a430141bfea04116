"""The service databases of a benchmark on PostgreSQL (`python -m bench --db postgres`).

Each stack gets a database of its own, `pf_bench_<hex>`, created on the server named by
POLICYFLOW_BENCH_POSTGRES (an admin URL; default POLICYFLOW_TEST_POSTGRES, then
postgresql://postgres@127.0.0.1:5432/test, trust auth on this machine) and dropped when the
stack closes, so runs and tests never share tables. The services share it (each keeps its own
alembic version table), as they do in the tests. The raw halves reach the same database with
asyncpg, the driver the services use through SQLAlchemy.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg
from sqlalchemy.engine.url import make_url

BACKENDS = ("sqlite", "postgres")


def admin_url() -> str:
    return os.environ.get(
        "POLICYFLOW_BENCH_POSTGRES",
        os.environ.get("POLICYFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    )


def dsn(url: str) -> str:
    """The plain libpq form asyncpg takes (the services accept it too)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def connect(url: str, **kwargs: Any) -> asyncpg.Connection:
    return await asyncpg.connect(dsn(url), timeout=10, **kwargs)


async def create_database(prefix: str = "pf_bench") -> str:
    """CREATE DATABASE <prefix>_<hex> on the admin server; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await connect(admin_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return dsn(make_url(admin_url()).set(database=name).render_as_string(hide_password=False))


async def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = await connect(admin_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def server_settings() -> dict[str, str]:
    """The durability settings both halves run under (reported with the figures), and whether
    autovacuum runs: without it no visibility map is set, and counting rows reads the heap."""
    conn = await connect(admin_url())
    try:
        names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "wal_level", "autovacuum")
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await conn.close()
