"""Small filesystems to fill: a tmpfs of a few MiB mounted where a database or a store lives.

Mounting needs root (CI runs as root); elsewhere the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = "filler.bin"


def require_mount() -> None:
    if os.geteuid() != 0:
        pytest.skip("a full disk is made with a tmpfs mount, which needs root (CI runs as root)")


@contextlib.contextmanager
def small_disk(path: Path, mib: int) -> Iterator[Path]:
    """A tmpfs of `mib` MiB at `path` for as long as the block runs."""
    require_mount()
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path}: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> int:
    """Write into `path` until the filesystem refuses (ENOSPC); returns the bytes written."""
    written = 0
    block = b"\0" * (64 * 1024)
    with open(path / FILLER, "ab", buffering=0) as f:
        for size in (len(block), 4096, 512, 1):
            while True:
                try:
                    written += f.write(block[:size])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def free(path: Path) -> None:
    """Give the space back."""
    (path / FILLER).unlink(missing_ok=True)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free
