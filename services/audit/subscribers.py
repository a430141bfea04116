"""The JetStream side of ingest: a faststream durable pull consumer, batch mode.

Order and exactly-once rest on two rules:
- a batch is acked only after its transaction (entries + tracking position) committed;
  a redelivery or a duplicate publish is dropped by event id, so it changes nothing;
- on start the durable consumer is (re)positioned at the ledger's tracking position + 1
  whenever the server still holds deliveries we never committed (a killed process). Left
  alone, JetStream would send newer messages first and the unacked ones only after their
  ack wait, and the ledger would record an assignment's events out of order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.js.errors
import structlog
from faststream import AckPolicy, Context
from faststream.nats import JStream, NatsBroker, PullSub
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy.exc import SQLAlchemyError

from contracts.subjects import EVENT_SUBJECTS
from services.audit.ingest import BatchOutcome, Ingestor, Message
from services.audit.writer import WriterLock
from services.shared.nats_urls import servers

log = structlog.get_logger("audit.consumer")
ACK_WAIT_SECONDS = 60.0
RETRY_MAX_SECONDS = 5.0
MESSAGE = Context("message")  # faststream injects the batch message (its raw_message: the nats Msgs)


def consumer_config(durable: str, position: int, batch_size: int) -> ConsumerConfig:
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        filter_subject=EVENT_SUBJECTS,
        ack_policy=JsAckPolicy.ALL,
        ack_wait=ACK_WAIT_SECONDS,
        max_ack_pending=batch_size * 4,
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
    """Owns the broker; `start` retries in the background until the stream exists.

    Each fetched batch is committed, then acked, before the next fetch: one batch in flight.
    (Overlapping the next fetch with the commit was measured slower: the SQLite thread and
    the event loop then fight over the GIL for every row.)
    """

    def __init__(
        self,
        ingestor: Ingestor,
        nats_url: str,
        stream: str,
        durable: str,
        batch_size: int,
        after_batch: Callable[[BatchOutcome], Awaitable[None]] | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.nats_url = nats_url
        self.stream = stream
        self.durable = durable
        self.batch_size = batch_size
        self.after_batch = after_batch
        self.broker: NatsBroker | None = None
        self.state = "starting"
        self.task: asyncio.Task[None] | None = None
        # One writer per ledger: replicas without the lock wait as hot standbys (writer.py).
        self.writer = WriterLock(ingestor.engine, durable)
        self.writer.on_lost = self._writer_lock_lost
        ingestor.fence = self.writer.fence

    def start(self) -> None:
        self.task = asyncio.create_task(self._start_when_ready(), name="audit-consumer-start")

    async def stop(self) -> None:
        """Stop fetching; a batch not committed yet is dropped and, unacked, delivered again."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.broker is not None:
            await self.broker.stop()
        await self.writer.release()
        self.state = "stopped"

    async def _writer_lock_lost(self) -> None:
        """The lock's session ended under us: stop consuming (the fence already stops appends), then wait again."""
        self.state = "writer lock lost: standing by"
        if self.broker is not None:
            broker, self.broker = self.broker, None
            await broker.stop()
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
                self.state = f"waiting: {type(exc).__name__}: {exc}"[:300]
                log.warning("consumer.not_ready", error=str(exc)[:300], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _start(self) -> None:
        await self.ingestor.load()
        nc = await nats.connect(servers(self.nats_url), connect_timeout=5, max_reconnect_attempts=0)
        try:
            done = await position_consumer(
                nc.jetstream(), self.stream, self.durable, self.ingestor.position, self.batch_size
            )
        finally:
            await nc.close()
        # Its per-batch "Received/Processed" lines at DEBUG; its errors still reach the log.
        broker = NatsBroker(
            servers(self.nats_url), logger=logging.getLogger("audit.faststream"), log_level=logging.DEBUG
        )
        subscriber = broker.subscriber(
            EVENT_SUBJECTS,
            stream=JStream(self.stream, declare=False),
            durable=self.durable,
            pull_sub=PullSub(batch_size=self.batch_size, timeout=0.25, batch=True),
            ack_policy=AckPolicy.MANUAL,
            decoder=_no_decode,
        )
        subscriber(self._handle)
        _normalize_fetch_timeouts(subscriber)
        await broker.start()
        self.broker = broker
        self.state = "running"
        log.info("consumer.started", consumer=done, position=self.ingestor.position, size=self.ingestor.size)

    async def _handle(self, message: Any = MESSAGE) -> None:
        await self._write(list(message.raw_message))

    async def _write(self, raw: list[Any]) -> None:
        batch = [Message(stream_seq(m), m.subject, m.data) for m in raw]
        delay = 0.1
        while True:
            try:
                outcome = await self.ingestor.ingest(batch)
                break
            except Exception as exc:  # noqa: BLE001 - whatever it was, nothing was kept: retry in place
                # Keep the messages ours (in progress) and try again, rather than nak, so later
                # messages never overtake them. Poison messages never get here (ingest rejects them).
                log.exception("ingest.retry", error=str(exc)[:300], batch=len(batch), retry_in=delay)
                await asyncio.gather(*(m.in_progress() for m in raw), return_exceptions=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                await self.ingestor.load()
        # Ack-all consumer: one ack covers the whole batch. Rejects are terminated first, so
        # the server's advisories name them (a term also acks everything before it).
        rejected = set(outcome.rejected)
        for m, b in zip(raw, batch, strict=True):
            if b.stream_seq in rejected:
                await m.term()
        await max(zip(batch, raw, strict=True), key=lambda pair: pair[0].stream_seq)[1].ack()
        log.debug("ingest.batch", appended=outcome.appended, duplicates=outcome.duplicates, size=self.ingestor.size)
        if self.after_batch is not None:
            await self.after_batch(outcome)


def stream_seq(msg: Any) -> int:
    """The JetStream sequence from the ack subject, without building nats-py's whole metadata.

    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`, or
    with `<domain>.<account hash>` after ACK and a trailing token (12+ tokens): fall back then.
    """
    tokens = msg.reply.split(".")
    return int(tokens[5]) if len(tokens) == 9 else int(msg.metadata.sequence.stream)


def _normalize_fetch_timeouts(subscriber: Any) -> None:
    """Work around faststream 0.7's batch pull loop losing a fetched batch.

    The loop ends a batch window on `nats.errors.TimeoutError` only, but nats-py's `fetch`
    also raises a bare `TimeoutError` when the window closes between its two pull requests.
    The loop task then dies holding the messages it already fetched: unacked, they come back
    only after the ack wait, behind newer ones. Re-raised as the nats error, they end the
    window as intended and the batch is handled. Patched on this subscription only, before
    the loop task first runs (`_create_subscription` adds the task without yielding).
    """
    create = subscriber._create_subscription

    async def create_then_patch() -> None:
        await create()
        fetch = subscriber.subscription.fetch

        async def fetch_normalized(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fetch(*args, **kwargs)
            except NatsTimeoutError:
                raise
            except TimeoutError as exc:
                raise NatsTimeoutError from exc

        subscriber.subscription.fetch = fetch_normalized

    subscriber._create_subscription = create_then_patch


async def _no_decode(msg: Any) -> None:
    """The handler reads the raw messages itself: skip faststream's JSON decoding of each body."""
    return None
