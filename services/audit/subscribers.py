"""The ledger's consumer: the shared runner (services.shared.consumer) feeding the Ingestor, run by
whichever replica holds the ledger writer lock (writer.py), with a checkpoint when one is due; and,
on the same replica, the access log's (access_view.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.access_log import ACCESS_STREAM, ACCESS_SUBJECTS, access_stream_config
from services.audit.access_view import AccessView
from services.audit.checkpoints import Checkpointer
from services.audit.ingest import BatchOutcome, Entry, Ingestor, Prepared
from services.audit.writer import WriterLock
from services.shared.consumer import Message, Runner
from services.shared.nats_urls import close_nats, servers
from services.shared.streams import ensure_stream

log = structlog.get_logger("audit.consumer")
RETRY_MAX_SECONDS = 5.0


class LedgerConsumer:
    """The view the runner drives (the ledger, then its checkpoints) and the runner's life.

    `start` returns at once; in the background it waits for the writer lock, then for NATS and
    the stream, retrying. Replicas without the lock wait as hot standbys; one that loses it
    stops consuming and waits again.
    """

    def __init__(
        self, ingestor: Ingestor, checkpointer: Checkpointer, nats_url: str, stream: str, batch_size: int
    ) -> None:
        self.ingestor, self.checkpointer = ingestor, checkpointer
        self.durable = ingestor.durable
        self.nats_url, self.stream, self.batch_size = nats_url, stream, batch_size
        self.nc: NatsClient | None = None
        self.runner: Runner | None = None
        self.access = AccessView(ingestor.engine, self)  # the access log, kept by whoever keeps the ledger
        self.access_runner: Runner | None = None
        self.access_task: asyncio.Task[None] | None = None
        self.state = "starting"
        self.task: asyncio.Task[None] | None = None
        self.writer = WriterLock(ingestor.engine, self.durable)
        self.writer.on_lost = self._writer_lock_lost
        ingestor.fence = self.writer.fence

    async def load(self) -> int:
        position = await self.ingestor.load()
        self.checkpointer.grew(self.ingestor.size)  # entries left unsigned by a stop are signed soon
        return position

    def read(self, batch: list[Message]) -> Prepared:
        return self.ingestor.read(batch)

    async def apply(self, batch: list[Message], first_available: int = 1, read: Prepared | None = None) -> BatchOutcome:
        out = await self.ingestor.apply(batch, first_available, read)
        if out.appended:
            await self._grew()
        return out

    async def append_own(self, entries: list[Entry], then: Callable[[AsyncConnection], Awaitable[None]]) -> int:
        """The access log's refusals into the ledger (access_view.py), then a checkpoint when one is due."""
        appended = await self.ingestor.append_own(entries, then)
        if appended:
            await self._grew()
        return appended

    async def _grew(self) -> None:
        try:
            await self.checkpointer.maybe(self.ingestor.size)
        except Exception:  # a checkpoint can wait for a later batch; ingest goes on
            log.exception("ingest.checkpoint_failed")
        self.checkpointer.grew(self.ingestor.size)

    def start(self) -> None:
        self.task = asyncio.create_task(self._start_when_ready(), name="audit-consumer-start")

    async def stop(self) -> None:
        """Stop fetching; a batch not committed yet is rolled back and, unacked, delivered again."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self._stop_consuming()
        await self.writer.release()
        self.state = "stopped"

    async def _stop_consuming(self) -> None:
        task, self.access_task = self.access_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for runner in (self.runner, self.access_runner):
            if runner is not None:
                await runner.stop()
        self.runner = self.access_runner = None
        nc, self.nc = self.nc, None
        if nc is not None:
            await close_nats(nc)  # sends the acks of what was committed; the rest come again

    async def _writer_lock_lost(self) -> None:
        """The lock's session ended under us: stop consuming (the fence already stops appends), then wait again."""
        self.state = "writer lock lost: standing by"
        await self._stop_consuming()
        self.task = asyncio.create_task(self._start_when_ready(), name="audit-consumer-start")

    async def _start_when_ready(self) -> None:
        delay = 0.2
        while True:
            try:
                if not self.writer.held:
                    self.state = "standby: waiting for the ledger writer lock"
                    await self.writer.acquire()
                self.nc = await nats.connect(
                    servers(self.nats_url), name="policyflow-audit", connect_timeout=5, max_reconnect_attempts=-1
                )
                js = self.nc.jetstream()
                self.runner = Runner(js, self, self.stream, batch_size=self.batch_size)
                await self.runner.start()
                self.access_task = asyncio.create_task(self._start_access_log(js), name="audit-access-log-start")
                self.state = "running"
                log.info("consumer.running", position=self.ingestor.position, size=self.ingestor.size)
                return
            except (OSError, nats.errors.Error, SQLAlchemyError) as exc:  # no NATS, no stream yet, no database
                await self._stop_consuming()
                self.state = f"waiting: {type(exc).__name__}: {exc}"[:300]
                log.warning("consumer.not_ready", error=str(exc)[:300], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _start_access_log(self, js: JetStreamContext) -> None:
        """The access log's runner, beside the ledger's: its stream away (a partition, a node down)
        is waited out on its own and never holds the ledger up."""
        delay = 0.5
        while True:
            try:
                await ensure_stream(js, access_stream_config(), wait=5.0)
                await self.access.load()
                await self.access.restart_if_new(int((await js.stream_info(ACCESS_STREAM)).state.last_seq or 0))
                runner = Runner(js, self.access, ACCESS_STREAM, ACCESS_SUBJECTS, self.batch_size)
                await runner.start()
                self.access_runner = runner
                return
            except (OSError, nats.errors.Error, SQLAlchemyError) as exc:
                log.warning("access.not_ready", error=str(exc)[:300], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
