"""Schema migrations: one alembic script directory per service, run at start under a lock.

Each service keeps its scripts in `services/<service>/migrations/` and its revision in its own
version table, `alembic_version_<service>`, so the services can share one PostgreSQL
database (their table names do not collide) or each have their own. Every service runs
`upgrade head` when it starts (`upgrade`), on PostgreSQL and on SQLite alike:

- PostgreSQL: the upgrade runs in one transaction (DDL is transactional there) that first
  takes `pg_advisory_xact_lock(<key of the service>)`; a second replica starting at the same
  moment waits on the lock, then finds the schema at head and does nothing.
- SQLite: an exclusive `flock` on `<database file>.migrate.lock` serialises processes that
  share the file.

A database made before migrations existed (tables by `metadata.create_all`, no version table)
is adopted: stamped at the initial revision, then upgraded as usual.

Operators can also run it by hand: `python -m services.shared.migrate assignment --url URL upgrade`
(`current`, `history`, `check`, `revision -m "..." [--autogenerate]`); without `--url` the URL
is read from `<SERVICE>_DATABASE_URL`, else `DATABASE_URL`, as the service reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.shared.db import async_url, make_engine

log = structlog.get_logger("migrate")

SERVICES = ("assignment", "progress", "audit", "notify", "witness")
INITIAL_REVISION = "0001"
# A table the initial revision creates: present without a version table means a database
# from before migrations (create_all), to be adopted by stamping INITIAL_REVISION.
ADOPT_MARKER = {
    "assignment": "programmes",
    "progress": "task_groups",
    "audit": "ledger",
    "notify": "notify_deliveries",
    "witness": "witnessed_logs",
}
SERVICES_DIR = Path(__file__).resolve().parents[1]


def migrations_dir(service: str) -> Path:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return SERVICES_DIR / service / "migrations"


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


def lock_key(service: str) -> int:
    """A stable signed 64-bit advisory lock key for the service's migrations."""
    digest = hashlib.sha256(f"policyflow:migrate:{service}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def alembic_config(service: str, url: str | None = None) -> Config:
    """An alembic Config without an ini file; env.py reads `service` from its attributes."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir(service)))
    cfg.attributes["service"] = service
    if url:
        cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return cfg


def run_env(metadata: MetaData, service: str) -> None:
    """The body of every service's migrations/env.py."""
    from alembic import context

    config = context.config

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        # Services may share a database: autogenerate and `check` look at this service's tables only.
        return type_ != "table" or name in metadata.tables

    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table": version_table(service),
        "compare_type": True,
        "include_name": include_name,
        "render_as_batch": True,  # SQLite alters tables by copy-and-move
    }
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:  # handed over by `upgrade` (inside its lock) or a test
        run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: set sqlalchemy.url or hand a connection in config.attributes")

    async def online() -> None:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(run)
        finally:
            await engine.dispose()

    asyncio.run(online())


def _upgrade_sync(connection: Connection, service: str, revision: str) -> None:
    cfg = alembic_config(service)
    cfg.attributes["connection"] = connection
    names = set(inspect(connection).get_table_names())
    if version_table(service) not in names and ADOPT_MARKER[service] in names:
        log.warning("migrate.adopting", service=service, stamped=INITIAL_REVISION)
        command.stamp(cfg, INITIAL_REVISION)
    command.upgrade(cfg, revision)


def _sqlite_path(engine: AsyncEngine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # In a thread: another engine of this very process may hold it (each open is its own lock).
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


async def _locked_upgrade(conn: AsyncConnection, service: str, revision: str) -> None:
    if conn.dialect.name == "postgresql":
        # Held until this transaction ends, so it covers the upgrade's own commit.
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(service)})
    await conn.run_sync(_upgrade_sync, service, revision)


async def upgrade(engine: AsyncEngine, service: str, revision: str = "head") -> None:
    """Bring the service's schema to `revision` (head), one process at a time."""
    path = _sqlite_path(engine)
    lock = _file_lock(path) if path is not None else contextlib.nullcontext()
    async with lock, engine.begin() as conn:
        await _locked_upgrade(conn, service, revision)
    log.info("migrate.done", service=service, revision=revision, dialect=engine.dialect.name)


async def current(engine: AsyncEngine, service: str) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        ctx = MigrationContext.configure(connection, opts={"version_table": version_table(service)})
        return ctx.get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


def head(service: str) -> str:
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(alembic_config(service)).get_current_head()
    assert found is not None
    return found


def database_url(service: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """`<SERVICE>_DATABASE_URL`, else `DATABASE_URL` (the names the service reads), or None."""
    for name in (f"{service.upper()}_DATABASE_URL", "DATABASE_URL"):
        if environ.get(name):
            return environ[name]
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.shared.migrate", description="A policyflow service's schema migrations (alembic)."
    )
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--url", help="database URL (default: $<SERVICE>_DATABASE_URL, else $DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="upgrade to a revision (default head), under the migration lock")
    up.add_argument("revision", nargs="?", default="head")
    sub.add_parser("current", help="the database's revision")
    sub.add_parser("history", help="the revisions")
    sub.add_parser("check", help="fail if the models differ from the schema at head")
    rev = sub.add_parser("revision", help="a new revision script")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)
    url = args.url or database_url(args.service)
    if not url:
        name = f"{args.service.upper()}_DATABASE_URL"
        parser.error(f"which database? Pass --url, or set {name} or DATABASE_URL")
    printable = make_url(async_url(url)).render_as_string(hide_password=True)
    cfg = alembic_config(args.service, url)
    if args.command == "upgrade":

        async def run() -> None:
            engine = make_engine(url)
            try:
                await upgrade(engine, args.service, args.revision)
                print(f"{args.service}: {printable} at {await current(engine, args.service)}")
            finally:
                await engine.dispose()

        asyncio.run(run())
    elif args.command == "current":
        command.current(cfg, verbose=True)
    elif args.command == "history":
        command.history(cfg)
    elif args.command == "check":
        command.check(cfg)
    else:
        command.revision(cfg, message=args.message, autogenerate=args.autogenerate)


if __name__ == "__main__":
    main()
