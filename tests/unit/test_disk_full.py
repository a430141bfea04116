"""Telling a full disk, and a database lost under a request, from other failures (services/shared/disk.py, web.py)."""

from __future__ import annotations

import errno
import sqlite3

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, OperationalError

from services.shared.disk import disk_full
from services.shared.web import install_error_handlers


class FakePostgresError(Exception):
    sqlstate = "53100"


def test_a_full_disk_is_recognised_through_the_wrappers() -> None:
    assert disk_full(OSError(errno.ENOSPC, "No space left on device")) == "no space left on device"
    wrapped = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database or disk is full"))
    assert disk_full(wrapped) == "SQLITE_FULL: database or disk is full"
    try:
        try:
            raise FakePostgresError("could not extend file")
        except FakePostgresError as inner:
            raise RuntimeError("commit failed") from inner
    except RuntimeError as outer:
        assert disk_full(outer) == "PostgreSQL: could not extend a file (disk full)"


def test_other_failures_are_not_a_full_disk() -> None:
    assert disk_full(OSError(errno.EIO, "I/O error")) is None
    assert disk_full(OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))) is None
    assert disk_full(ValueError("no")) is None


async def test_a_database_lost_under_a_request_is_503_not_500() -> None:
    """A connection the server dropped (a restart, a fail-over) answers 503 with words and Retry-After;
    any other failure stays a logged 500."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/lost")
    async def lost() -> None:
        raise DBAPIError("SELECT 1", {}, ConnectionResetError("connection was closed"), connection_invalidated=True)

    @app.get("/broken")
    async def broken() -> None:
        raise DBAPIError("SELECT 1", {}, ValueError("no such column"))

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as c:
        r = await c.get("/lost")
        assert (r.status_code, r.headers["retry-after"]) == (503, "2") and "try again" in r.json()["detail"]
        assert (await c.get("/broken")).status_code == 500
