"""The read model's JetStream consumer (services.shared.consumer), and the lease that lets only
one process of a host run it (when the service runs several)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import structlog
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from services.progress.settings import ProgressSettings
from services.progress.store import READ_MODEL
from services.shared.consumer import Runner
from services.shared.db import async_url
from services.shared.projection import Projection

log = structlog.get_logger()


def consumer(js: Any, engine: AsyncEngine, settings: ProgressSettings) -> Runner:
    return Runner(
        js,
        Projection(engine, READ_MODEL, settings.read_model_durable),
        stream=settings.event_stream,
        batch_size=settings.read_model_batch,
        linger=settings.read_model_linger_ms / 1000,
    )


def lease_path(settings: ProgressSettings) -> Path:
    """One lock file per database and durable: the SQLite file's neighbour, else a file in the
    temp directory named by a digest of the database URL (with its password) and durable name."""
    url = make_url(async_url(settings.db_url()))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(f"{url.database}.{settings.read_model_durable}.consumer.lock")
    key = hashlib.sha256(f"{url.render_as_string(hide_password=False)}|{settings.read_model_durable}".encode())
    return Path(tempfile.gettempdir()) / f"policyflow-progress-{key.hexdigest()[:24]}.consumer.lock"


def try_exclusive_lock(path: Path) -> IO[bytes] | None:
    """An exclusive flock on `path`, held until the returned file is closed; None if it is taken.

    Each call opens the file anew, so it excludes other calls in this process as well as other
    processes; the kernel drops the lock when its holder dies, however it dies.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "ab")  # noqa: SIM115 - held open as long as the lock
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


class ConsumerLease:
    """Run the consumer only while this process holds an exclusive flock on `path`.

    With several worker processes (PROGRESS_WORKERS) every one of them serves HTTP, but a single
    one folds the stream: competing fetches of one durable would hand each process part of the
    stream, each batch then finding gaps and sending messages back, and the two writers would
    keep rolling back each other's batches on the position guard (still exactly once, but slow).
    The kernel drops the lock when its holder dies, however it dies; the others try again every
    `retry` seconds and the first to get it starts the consumer where the position says. One
    process alone gets the lock at once, so a single worker behaves as before.
    """

    def __init__(self, path: Path, consumer: Runner, retry: float = 1.0) -> None:
        self.path, self.consumer, self.retry = path, consumer, retry
        self._file: IO[bytes] | None = None
        self._waiting: asyncio.Task[None] | None = None
        self.held = False

    def _try_lock(self) -> bool:
        self._file = try_exclusive_lock(self.path)
        return self._file is not None

    async def _take(self) -> None:
        self.held = True
        log.info("read_model.lease_taken", pid=os.getpid(), lock=str(self.path))
        await self.consumer.start()

    async def start(self) -> None:
        if self._try_lock():
            await self._take()
            return
        log.info("read_model.lease_held_elsewhere", pid=os.getpid(), lock=str(self.path))
        self._waiting = asyncio.create_task(self._wait(), name="read-model-lease")

    async def _wait(self) -> None:
        while True:
            await asyncio.sleep(self.retry)
            if self._try_lock():
                try:
                    await self._take()
                    return
                except Exception:  # NATS trouble: let go, another process (or we) retries
                    log.exception("read_model.consumer_start_failed")
                    self._release()

    def _release(self) -> None:
        self.held = False
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None

    async def stop(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._waiting
        if self.held:
            await self.consumer.stop()
        self._release()
