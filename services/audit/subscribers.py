"""The JetStream side of ingest: a durable pull consumer (nats-py), fetched, prepared and committed in a pipeline.

Order and exactly-once rest on two rules:
- a batch is acked only after its transaction (entries + tracking position) committed;
  a redelivery or a duplicate publish is dropped by event id, so it changes nothing;
- on start the durable consumer is (re)positioned at the ledger's tracking position + 1
  whenever the server still holds deliveries we never committed (a killed process). Left
  alone, JetStream would send newer messages first and the unacked ones only after their
  ack wait, and the ledger would record an assignment's events out of order.

The pipeline only overlaps work that touches no ledger state: while one transaction
commits (SQLite's fsync, on aiosqlite's thread), the next batches are fetched and
`prepare`d (validated, canonicalised). Commits stay one at a time and in stream order,
and the ledger head still moves only after each commit (ingest.py). `prepare` runs in a
process of its own (`Preparer`), on another core, when AUDIT_PREPARE_PROCESS allows; it
is pure, so a lost process only means preparing that batch again here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import nats
import nats.js.errors
import structlog
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy.exc import SQLAlchemyError

from contracts.subjects import EVENT_SUBJECTS
from services.audit.ingest import BatchOutcome, Ingestor, Message, Prepared, merge, prepare, prepare_tuples
from services.audit.writer import WriterLock
from services.shared.nats_urls import close_nats, servers

log = structlog.get_logger("audit.consumer")
ACK_WAIT_SECONDS = 60.0
RETRY_MAX_SECONDS = 5.0
FETCH_WAIT_SECONDS = 0.25  # how long one fetch waits for a batch to fill
# Fetched and prepared batches waiting for the transaction in progress. They are merged into
# the next transaction (one fsync for all of them) when the commit falls behind the stream.
QUEUED_BATCHES = 4
# Events prepared between yields to the event loop, so that the commit in progress gets its
# next statement issued within about a millisecond rather than after a whole batch's CPU work.
PREPARE_SLICE = 64


def consumer_config(durable: str, position: int, batch_size: int) -> ConsumerConfig:
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        filter_subject=EVENT_SUBJECTS,
        ack_policy=JsAckPolicy.ALL,
        ack_wait=ACK_WAIT_SECONDS,
        # Room for the batch committing, those queued behind it and the one being fetched.
        max_ack_pending=batch_size * (2 * QUEUED_BATCHES + 4),
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if position else DeliverPolicy.ALL,
        opt_start_seq=position + 1 if position else None,
    )


async def position_consumer(js: Any, stream: str, durable: str, position: int, batch_size: int) -> str:
    """Make the durable consumer resume right after `position`; returns what was done."""
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        info = None
    if info is not None:
        delivered = int(info.delivered.stream_seq or 0)
        pending = int(info.num_ack_pending or 0)
        same = info.config.filter_subject == EVENT_SUBJECTS and info.config.ack_policy == JsAckPolicy.ALL
        # Delivered-but-uncommitted messages (pending, or delivered past our position) would
        # come back late and out of order: start over from our own position instead.
        if same and pending == 0 and delivered <= position:
            return "bound"
        try:
            await js.delete_consumer(stream, durable)
        except (NatsTimeoutError, nats.errors.NoRespondersError, nats.js.errors.APIError) as exc:
            # Without the right to delete our own consumer (NATS permissions), carry on as it is:
            # nothing is lost or doubled (dedupe by event id), but the late ones land out of order.
            log.error(
                "consumer.reposition_denied",
                error=str(exc) or type(exc).__name__,
                needs=f"$JS.API.CONSUMER.DELETE.{stream}.{durable}",
                delivered=delivered,
                pending=pending,
                position=position,
            )
            return "bound (not repositioned)"
        log.info("consumer.repositioned", delivered=delivered, pending=pending, position=position)
    await js.add_consumer(stream, config=consumer_config(durable, position, batch_size))
    return "created" if info is None else "repositioned"


class LedgerConsumer:
    """Owns the NATS connection; `start` retries in the background until the stream exists.

    Two tasks while running: `_fetch` (fetch a batch, prepare it, queue it) and `_commit`
    (take what is queued, commit it in one transaction, then ack). The queue is bounded, and
    the server's max_ack_pending bounds what is delivered but not yet acked.
    """

    def __init__(
        self,
        ingestor: Ingestor,
        nats_url: str,
        stream: str,
        durable: str,
        batch_size: int,
        after_batch: Callable[[BatchOutcome], Awaitable[None]] | None = None,
        prepare_process: bool = False,
    ) -> None:
        self.ingestor = ingestor
        self.preparer = Preparer(prepare_process)
        self.nats_url = nats_url
        self.stream = stream
        self.durable = durable
        self.batch_size = batch_size
        self.after_batch = after_batch
        self.nc: Any = None
        self.state = "starting"
        self.task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # One writer per ledger: replicas without the lock wait as hot standbys (writer.py).
        self.writer = WriterLock(ingestor.engine, durable)
        self.writer.on_lost = self._writer_lock_lost
        ingestor.fence = self.writer.fence

    def start(self) -> None:
        self.task = asyncio.create_task(self._start_when_ready(), name="audit-consumer-start")

    async def stop(self) -> None:
        """Stop fetching; batches not committed yet are dropped and, unacked, delivered again."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self._stop_consuming()
        self.preparer.close()
        await self.writer.release()
        self.state = "stopped"

    async def _stop_consuming(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
                await self._start()
                return
            except (OSError, nats.errors.Error, SQLAlchemyError) as exc:
                await self._stop_consuming()
                self.state = f"waiting: {type(exc).__name__}: {exc}"[:300]
                log.warning("consumer.not_ready", error=str(exc)[:300], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _start(self) -> None:
        await self.ingestor.load()
        self.nc = await nats.connect(servers(self.nats_url), connect_timeout=5)
        js = self.nc.jetstream()
        done = await position_consumer(js, self.stream, self.durable, self.ingestor.position, self.batch_size)
        puller = Puller(self.nc, self.stream, self.durable, self.batch_size)
        await puller.subscribe()
        self.preparer.start()
        queue: asyncio.Queue[tuple[list[Any], asyncio.Future[Prepared]]] = asyncio.Queue(QUEUED_BATCHES)
        self._tasks = [
            asyncio.create_task(self._fetch(puller, queue), name="audit-consumer-fetch"),
            asyncio.create_task(self._commit(queue), name="audit-consumer-commit"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_done)
        self.state = "running"
        log.info("consumer.started", consumer=done, position=self.ingestor.position, size=self.ingestor.size)

    async def _fetch(self, puller: Puller, queue: asyncio.Queue[tuple[list[Any], asyncio.Future[Prepared]]]) -> None:
        while True:
            try:
                raw = await puller.fetch(FETCH_WAIT_SECONDS)
            except (nats.errors.ConnectionClosedError, ConsumerGone) as exc:
                # The client gave up reconnecting, or our consumer went: start over (connect,
                # reposition) in the background.
                log.warning("consumer.lost", error=str(exc)[:300] or type(exc).__name__)
                self.state = f"waiting: {type(exc).__name__}"
                self.task = asyncio.create_task(self._restart(), name="audit-consumer-restart")
                return
            except (nats.errors.Error, OSError) as exc:  # a reconnect in progress: nats-py retries it
                log.warning("consumer.fetch_failed", error=str(exc)[:300] or type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if raw:
                # Queued in fetch order with the batch's preparation under way; the commit task
                # awaits them in that order.
                await queue.put((raw, await self.preparer.submit(raw)))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A fetch or commit task that failed (a bug, not a stop): say so and start over."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("consumer.task_failed", task=task.get_name(), error=repr(task.exception())[:300])
        self.state = f"restarting after {task.get_name()} failed"
        self.task = asyncio.create_task(self._restart(), name="audit-consumer-restart")

    async def _restart(self) -> None:
        await self._stop_consuming()
        await self._start_when_ready()

    async def _commit(self, queue: asyncio.Queue[tuple[list[Any], asyncio.Future[Prepared]]]) -> None:
        while True:
            items = [await queue.get()]
            while not queue.empty():
                items.append(queue.get_nowait())
            raw = [m for msgs, _ in items for m in msgs]
            prepared = [await self.preparer.result(msgs, future) for msgs, future in items]
            outcome = await self._write(raw, merge(prepared))
            # Ack-all consumer: one ack covers the whole batch. Rejects are terminated first, so
            # the server's advisories name them (a term also acks everything before it).
            rejected = set(outcome.rejected)
            seqs = [stream_seq(m) for m in raw]
            try:
                for m, seq in zip(raw, seqs, strict=True):
                    if seq in rejected:
                        await m.term()
                await raw[seqs.index(max(seqs))].ack()
            except (nats.errors.Error, OSError) as exc:
                # Committed but not acked: they come again and are dropped as duplicates.
                log.warning("ingest.ack_failed", error=str(exc)[:300] or type(exc).__name__)
            log.debug(
                "ingest.batch", appended=outcome.appended, duplicates=outcome.duplicates, size=self.ingestor.size
            )
            if self.after_batch is not None:
                try:
                    await self.after_batch(outcome)
                except Exception as exc:  # noqa: BLE001 - a checkpoint can wait for a later batch; ingest goes on
                    log.exception("ingest.after_batch_failed", error=str(exc)[:300])

    async def _write(self, raw: list[Any], batch: Prepared) -> BatchOutcome:
        delay = 0.1
        while True:
            try:
                return await self.ingestor.commit(batch)
            except Exception as exc:  # noqa: BLE001 - whatever it was, nothing was kept: retry in place
                # Keep the messages ours (in progress) and try again, rather than nak, so later
                # messages never overtake them. Poison messages never get here (prepare rejects them).
                log.exception("ingest.retry", error=str(exc)[:300], batch=len(raw), retry_in=delay)
                await asyncio.gather(*(m.in_progress() for m in raw), return_exceptions=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                await self.ingestor.load()


class ConsumerGone(RuntimeError):
    """The server says our durable consumer no longer exists (deleted under us)."""


class Puller:
    """Fetches of a durable pull consumer, made of our own pull requests on one callback subscription.

    nats-py's `fetch` waits for each message of a batch with `next_msg`, which creates a task,
    a timeout and a uuid per message: about a fifth of this consumer's CPU in profiles. Here the
    subscription's callback appends each message to a list, and a fetch waits once, until its
    batch is full or the server ends the request with a status (404 no messages, 408 expired).
    Like nats-py's fetch, a fetch first asks for what is there (no_wait), and only when nothing
    is, waits up to `wait` seconds for more. A message that arrives after its fetch returned (a
    request the server ended late) stays in the list and opens the next fetch: every delivered
    message is handed out once, in delivery order.
    """

    def __init__(self, nc: Any, stream: str, durable: str, batch_size: int) -> None:
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.batch_size = batch_size
        self.inbox = nc.new_inbox()
        self.msgs: list[Any] = []
        self.ended = asyncio.Event()
        self.error = ""

    async def subscribe(self) -> None:
        # No byte limit on the client's pending queue: max_ack_pending bounds what the server
        # delivers, and a limit hit would drop messages as a "slow consumer" (back after ack wait).
        await self.nc.subscribe(self.inbox, cb=self._on_msg, pending_bytes_limit=0)

    async def _on_msg(self, msg: Any) -> None:
        if msg.reply:  # a stream message: every delivery carries its $JS.ACK reply subject
            self.msgs.append(msg)
            if len(self.msgs) >= self.batch_size:
                self.ended.set()
            return
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "100":  # idle heartbeat (not asked for)
            return
        if status not in ("404", "408"):
            self.error = f"{status} {headers.get('Description', '')}".strip()
        self.ended.set()

    async def _request(self, wanted: int, wait: float | None) -> None:
        self.ended.clear()
        request: dict[str, Any] = {"batch": wanted}
        if wait is None:
            request["no_wait"] = True
        else:
            request["expires"] = int(wait * 1e9)
        await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self.inbox)
        # The server ends each request itself; the timeout only covers a reply lost in a reconnect.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), (wait or 0.0) + 2.0)

    async def fetch(self, wait: float) -> list[Any]:
        """Up to a batch of delivered messages, in delivery order; [] if none came within `wait`."""
        if len(self.msgs) < self.batch_size:
            await self._request(self.batch_size - len(self.msgs), None)
            if not self.msgs:
                await self._request(self.batch_size, wait)
        if self.error:
            error, self.error = self.error, ""
            if "Consumer Deleted" in error:
                raise ConsumerGone(error)
            log.warning("consumer.pull_status", status=error)
        batch, self.msgs = self.msgs[: self.batch_size], self.msgs[self.batch_size :]
        return batch


class Preparer:
    """`prepare` in a process of its own (spawned, one worker), or here in slices.

    Validation and the canonical text are most of ingest's CPU, and they touch no ledger state:
    in another process they run on the other core while this one receives, commits and acks.
    The batch crosses as (seq, subject, data) tuples and comes back as plain tuples (ingest.Entry),
    a few microseconds per event each way. Until the process has started (its imports take a
    second or so), and whenever it is lost, batches are prepared here instead.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.pool: ProcessPoolExecutor | None = None
        self.ready: asyncio.Future[Any] | None = None

    def start(self) -> None:
        if not self.enabled or self.pool is not None:
            return
        try:
            self.pool = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init, initargs=(os.getpid(),)
            )
            self.ready = asyncio.wrap_future(self.pool.submit(_tune_gc))
        except (OSError, RuntimeError) as exc:  # no processes here: prepare in this one
            log.warning("prepare.process_unavailable", error=str(exc)[:300])
            self.enabled = False

    def close(self) -> None:
        pool, self.pool, self.ready = self.pool, None, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, raw: list[Any]) -> asyncio.Future[Prepared]:
        items = [(stream_seq(m), m.subject, m.data) for m in raw]
        if self._usable():
            assert self.pool is not None
            try:
                future: Future[Prepared] = self.pool.submit(prepare_tuples, items)
                return asyncio.wrap_future(future)
            except RuntimeError as exc:  # BrokenProcessPool, or shut down meanwhile
                self._lost(exc)
        done: asyncio.Future[Prepared] = asyncio.get_running_loop().create_future()
        done.set_result(await prepare_in_slices([Message(*m) for m in items]))
        return done

    def _usable(self) -> bool:
        ready = self.ready
        if self.pool is None or ready is None or not ready.done():
            return False
        if ready.cancelled() or ready.exception() is not None:  # it never started: stay in this process
            log.warning("prepare.process_failed", error=repr(None if ready.cancelled() else ready.exception())[:300])
            self.close()
            self.enabled = False
            return False
        return True

    async def result(self, raw: list[Any], future: asyncio.Future[Prepared]) -> Prepared:
        try:
            return await future
        except Exception as exc:  # noqa: BLE001 - the process died (BrokenProcessPool) or failed: prepare here
            self._lost(exc)
            return await prepare_in_slices([Message(stream_seq(m), m.subject, m.data) for m in raw])

    def _lost(self, exc: BaseException) -> None:
        log.warning("prepare.process_lost", error=str(exc)[:300] or type(exc).__name__)
        self.close()
        self.start()  # a new one, used once it has started


def _worker_init(parent: int) -> None:
    """In the prepare process: exit as soon as the service process is gone (kill -9 included).

    The worker holds both ends of its call queue's pipe, so it never sees an end of file when
    the parent dies; without this it would outlive the service, blocked on that queue.
    """
    _tune_gc()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _tune_gc() -> None:
    """The prepare process allocates like ingest does: the same GC settings (services.audit.__main__)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def prepare_in_slices(batch: list[Message]) -> Prepared:
    """`prepare(batch)`, yielding to the event loop between slices (see PREPARE_SLICE)."""
    batch = sorted(batch, key=lambda m: m.stream_seq)
    parts = []
    for lo in range(0, len(batch), PREPARE_SLICE):
        if lo:
            await asyncio.sleep(0)
        parts.append(prepare(batch[lo : lo + PREPARE_SLICE]))
    return merge(parts)


def stream_seq(msg: Any) -> int:
    """The JetStream sequence from the ack subject, without building nats-py's whole metadata.

    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`, or
    with `<domain>.<account hash>` after ACK and a trailing token (12+ tokens): fall back then.
    """
    tokens = msg.reply.split(".")
    return int(tokens[5]) if len(tokens) == 9 else int(msg.metadata.sequence.stream)
