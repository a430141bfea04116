"""One `make up` per state directory: `var/up.pid` names the running launcher.

A second `make up` in the same directory would find the ports taken by the first stack and its
services healthy, and report a stack it did not start; it stops at once instead, naming the first.
A file left by a launcher that was killed (its process gone, or the pid now someone else's) does
not block a new start.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCK_FILE = "up.pid"


class AlreadyRunning(Exception):
    def __init__(self, pid: int, started: str) -> None:
        super().__init__(
            f"policyflow is already running here (pid {pid}, started {started}); "
            f"stop it with Ctrl-C in its terminal or `kill {pid}`"
        )
        self.pid = pid


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


@dataclass
class StackLock:
    path: Path

    @classmethod
    def acquire(cls, var_dir: Path) -> StackLock:
        """Claim the directory, or raise AlreadyRunning naming the launcher that holds it."""
        var_dir.mkdir(parents=True, exist_ok=True)
        lock = cls(var_dir / LOCK_FILE)
        pid = os.getpid()
        started = dt.datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
        record = {"pid": pid, "process_start": _process_start(pid), "started": started}
        for _ in range(2):
            try:
                fd = os.open(lock.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = lock.holder()
                if holder is not None:
                    raise AlreadyRunning(int(holder["pid"]), str(holder.get("started", "?"))) from None
                lock.path.unlink(missing_ok=True)  # stale: its launcher is gone
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            return lock
        raise AlreadyRunning(-1, "just now")  # another launcher claimed it between our two tries

    def holder(self) -> dict[str, Any] | None:
        """The record of the live launcher holding the lock, or None (no file, unreadable, or stale)."""
        try:
            record = json.loads(self.path.read_text())
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not _alive(pid):
            return None
        recorded, now = record.get("process_start"), _process_start(pid)
        if recorded is not None and now is not None and recorded != now:
            return None  # the pid was reused by another process
        return dict(record)

    def release(self) -> None:
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if record.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
