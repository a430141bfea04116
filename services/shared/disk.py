"""A full disk told apart from other failures: a service says so, keeps nothing half-written, and
waits for space (the batch comes again) instead of failing over and over with a traceback."""

from __future__ import annotations

import errno

FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
POSTGRES_DISK_FULL = "53100"  # SQLSTATE disk_full
SQLITE_FULL = "database or disk is full"


def disk_full(exc: BaseException) -> str | None:
    """Why, when `exc` (or what it wraps) says the disk is full; None for any other failure."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return "no space left on device"
        if SQLITE_FULL in str(e):
            return "SQLITE_FULL: database or disk is full"
        if getattr(e, "sqlstate", None) == POSTGRES_DISK_FULL or getattr(e, "pgcode", None) == POSTGRES_DISK_FULL:
            return "PostgreSQL: could not extend a file (disk full)"
        orig = getattr(e, "orig", None)
        todo += [e.__cause__, e.__context__, orig if isinstance(orig, BaseException) else None]
    return None
