"""policyflow's own processes (`python -m MODULE`) as children of a test, for kill -9 and restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spawn(module: str, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m module` from the repository root, its output appended to `log`.

    In a session of its own, so signals sent to the test (Ctrl-C) or to it reach nothing else.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def stop(*procs: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM to every one still running (after SIGCONT, so a paused one acts on it), then wait for
    each; kill -9 any still there after `timeout` seconds."""
    running = [p for p in procs if p.poll() is None]
    for p in running:
        p.send_signal(signal.SIGCONT)
        p.send_signal(signal.SIGTERM)
    for p in running:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


@contextmanager
def stopped_after() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to put started processes in; every one is stopped on the way out."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        stop(*procs)
