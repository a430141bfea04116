"""`make up` twice in one directory: the second says the first is running and exits non-zero; a file
left by a killed launcher does not block a new start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.local.lock import LOCK_FILE, AlreadyRunning, StackLock

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_start_names_the_first_and_stops(tmp_path: Path) -> None:
    held = StackLock.acquire(tmp_path)  # this test process plays the running launcher
    record = json.loads((tmp_path / LOCK_FILE).read_text())
    env = {**os.environ, "POLICYFLOW_VAR": str(tmp_path), "COLUMNS": "300"}
    second = subprocess.run(
        [sys.executable, "-m", "deploy.local.up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1
    said = " ".join(second.stderr.split())
    assert said == (
        f"policyflow is already running here (pid {os.getpid()}, started {record['started']}); "
        f"stop it with Ctrl-C in its terminal or `kill {os.getpid()}`"
    )
    assert "is up" not in second.stderr + second.stdout
    held.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_killed_launchers_file_does_not_block(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": int(gone.stdout), "started": "earlier"}))
    lock = StackLock.acquire(tmp_path)
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        StackLock.acquire(tmp_path)
    lock.release()


def test_a_reused_pid_does_not_block(tmp_path: Path) -> None:
    """The pid is alive but is another process than the one that wrote the file (pid reuse)."""
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "process_start": "-1", "started": "earlier"}))
    StackLock.acquire(tmp_path).release()
