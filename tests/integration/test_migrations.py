"""Alembic migrations per service, on SQLite and PostgreSQL: head matches the models, replicas
starting together do not race, a database from before migrations is adopted, the CLI works."""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlmodel import SQLModel

from services.shared import migrate
from services.shared.db import make_engine
from tests.databases import TestDatabase

SERVICES = ["assignment", "progress", "audit", "notify", "witness"]


def store(service: str) -> ModuleType:
    return importlib.import_module(f"services.{service}.store")


def test_each_service_has_its_own_metadata() -> None:
    """One SQLModel registry per service: its alembic environment sees its own tables only."""
    tables = {service: set(store(service).metadata.tables) for service in SERVICES}
    assert all(tables.values())
    assert sum(len(names) for names in tables.values()) == len(set.union(*tables.values()))
    assert not SQLModel.metadata.tables


async def test_every_service_upgrades_to_head_matching_its_models(database: TestDatabase) -> None:
    """`alembic check` finds nothing between the SQLModel models and the schema at head. (SQLite
    cannot reflect the status order's expression indexes; PostgreSQL compares them too.)"""
    for service in SERVICES:
        engine = make_engine(database.url(service))
        try:
            assert await migrate.current(engine, service) is None
            await store(service).create_tables(engine)
            await store(service).create_tables(engine)  # again: nothing to do
            assert await migrate.current(engine, service) == migrate.head(service)
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert migrate.version_table(service) in names
        finally:
            await engine.dispose()
        await asyncio.to_thread(command.check, migrate.alembic_config(service, database.url(service)))


async def test_replicas_starting_together_migrate_once(database: TestDatabase) -> None:
    """Four engines (as four replicas would) upgrade the same database at once: all succeed."""
    service = "assignment"
    engines = [make_engine(database.url(service)) for _ in range(4)]
    try:
        await asyncio.gather(*(migrate.upgrade(e, service) for e in engines))
        assert {await migrate.current(e, service) for e in engines} == {migrate.head(service)}
    finally:
        for e in engines:
            await e.dispose()


async def test_a_database_made_by_create_all_is_adopted(database: TestDatabase) -> None:
    service = "progress"
    engine = make_engine(database.url(service))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(store(service).metadata.create_all)
        assert await migrate.current(engine, service) is None
        await migrate.upgrade(engine, service)
        assert await migrate.current(engine, service) == migrate.head(service)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_command_line_upgrade_and_check(
    database: TestDatabase, service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = database.url(service)
    migrate.main([service, "--url", url, "upgrade"])
    assert f"at {migrate.head(service)}" in capsys.readouterr().out
    migrate.main([service, "--url", url, "check"])  # raises if the models drifted from head


def test_command_line_reads_the_url_from_the_environment_or_says_it_needs_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate.database_url("audit", {"AUDIT_DATABASE_URL": "a", "DATABASE_URL": "b"}) == "a"
    assert migrate.database_url("progress", {"AUDIT_DATABASE_URL": "a", "DATABASE_URL": "b"}) == "b"
    for name in ("ASSIGNMENT_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_:
        migrate.main(["assignment", "current"])
    assert exit_.value.code == 2
    assert "Pass --url, or set ASSIGNMENT_DATABASE_URL or DATABASE_URL" in capsys.readouterr().err
