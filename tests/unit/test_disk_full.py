"""Telling a full disk from other failures (services/shared/disk.py)."""

from __future__ import annotations

import errno
import sqlite3

from sqlalchemy.exc import OperationalError

from services.shared.disk import disk_full


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
