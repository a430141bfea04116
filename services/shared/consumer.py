"""The one way policyflow reads the event stream: a durable JetStream pull consumer feeding a view.

A view (the progress read model, the assignment inbox, the audit ledger) applies a batch in
one transaction that also stores its stream position, and names the messages that arrived
ahead of a gap. The runner acks a message once its batch is committed (or found already
applied) and sends the ones ahead of a gap back for later, so a view is always built from
a prefix of the stream, each message once.

On start the durable consumer is put right after the view's position whenever the server
holds deliveries the view never committed (a process killed mid-batch): left alone,
JetStream would send newer messages first and the unacked ones only after their ack wait,
and the view would wait that long for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

import structlog
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from contracts.subjects import EVENT_STREAM, EVENT_SUBJECTS
from services.shared.disk import disk_full

log = structlog.get_logger("consumer")
LOST_ACK_CHECK_S = 5.0  # how often an idle runner asks whether the server lost acks it was sent


class Message(NamedTuple):
    """What a view reads of a JetStream message."""

    stream_seq: int
    subject: str
    data: bytes


class Applied(Protocol):
    deferred: list[int]  # stream seqs ahead of a gap: sent back, applied once the gap is filled
    position: int  # the view's position after the batch


class View(Protocol):
    durable: str  # the consumer's name, and the key of the view's stored position

    async def load(self) -> int:
        """The stored position (and whatever the view keeps in memory), read as the runner starts."""
        ...

    def read(self, batch: list[Message]) -> Any:
        """The batch as the view reads it before applying it (validation, canonical text): CPU only,
        no view state, no I/O. The runner reads the next batch while the one before is applied, so
        that work overlaps the database's."""
        ...

    async def apply(self, batch: list[Message], first_available: int = 1, read: Any = None) -> Applied:
        """Apply the batch (`read`: its `read(batch)`, made now when None) and store the new
        position in one transaction."""
        ...


def in_order(seqs: Iterable[int], position: int, first_available: int = 1) -> tuple[list[int], list[int], list[int]]:
    """Split stream seqs into (ready, already applied, ahead of a gap) for a view at `position`.

    `first_available` is the stream's first sequence: a gap below it is retention, not loss.
    """
    ready: list[int] = []
    applied: list[int] = []
    deferred: list[int] = []
    last = position
    for seq in sorted(seqs):
        if seq <= last:
            applied.append(seq)
        elif seq == last + 1 or (seq <= first_available and not deferred):
            ready.append(seq)
            last = seq
        else:
            deferred.append(seq)
    return ready, applied, deferred


def consumer_config(durable: str, subject: str, position: int, batch_size: int, ack_wait: float) -> ConsumerConfig:
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        # A batch being applied, one being fetched, and some sent back ahead of a gap.
        max_ack_pending=4 * batch_size,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if position else DeliverPolicy.ALL,
        opt_start_seq=position + 1 if position else None,
    )


async def place_consumer(js: Any, stream: str, config: ConsumerConfig, position: int) -> str:
    """Make the durable consumer resume right after `position`; returns what was done."""
    durable = str(config.durable_name)
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        info = None
    if info is not None:
        delivered = int(info.delivered.stream_seq or 0)
        pending = int(info.num_ack_pending or 0)
        same = info.config.filter_subject == config.filter_subject and info.config.ack_policy == config.ack_policy
        if same and pending == 0 and delivered <= position:
            return "bound"
        try:
            await js.delete_consumer(stream, durable)
        except Exception as exc:  # noqa: BLE001 - e.g. NATS permissions: carry on as it is (nothing lost, only late)
            log.error(
                "consumer.reposition_denied",
                consumer=durable,
                error=str(exc) or type(exc).__name__,
                needs=f"$JS.API.CONSUMER.DELETE.{stream}.{durable}",
                delivered=delivered,
                pending=pending,
                position=position,
            )
            return "bound (not repositioned)"
        log.info("consumer.repositioned", consumer=durable, delivered=delivered, pending=pending, position=position)
    await js.add_consumer(stream, config=config)
    return "created" if info is None else "repositioned"


class Fetched(NamedTuple):
    """A fetched batch: its NATS messages by stream seq, as the view's messages, and the view's reading."""

    by_seq: dict[int, Any]
    batch: list[Message]
    read: Any


def stream_seq(msg: Any) -> int:
    """The stream sequence from the ack subject, without building nats-py's whole metadata (a
    few microseconds a message): `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer
    seq>.<time>.<pending>`; the longer form (with a domain and an account) goes through nats-py."""
    tokens = msg.reply.split(".")
    return int(tokens[5]) if len(tokens) == 9 else int(msg.metadata.sequence.stream)


class Runner:
    """Fetch batches of a durable pull consumer and hand them to a view, one transaction each.

    A short batch waits `linger` seconds for the rest of its burst: while commands stream in,
    events come one or two at a time, and a transaction each (position read, state read,
    update, position move, commit) cost more CPU than the work itself.
    """

    def __init__(
        self,
        js: Any,
        view: View,
        stream: str = EVENT_STREAM,
        subject: str = EVENT_SUBJECTS,
        batch_size: int = 256,
        max_wait: float = 0.25,
        linger: float = 0.05,
        ack_wait: float = 60.0,
    ) -> None:
        self.js, self.view, self.stream, self.subject = js, view, stream, subject
        self.batch_size, self.max_wait, self.linger, self.ack_wait = batch_size, max_wait, linger, ack_wait
        self.first_available = 1
        self.log = log.bind(consumer=view.durable)
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # Why the view takes no work now (its disk is full), shown by the service's health; None when well.
        self.trouble: str | None = None
        self._trouble_since = 0.0
        self._position = 0  # the view's position after the last batch applied
        self._next_ack_check = 0.0

    async def start(self) -> None:
        await self._bind()
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.view.durable}")

    async def _bind(self) -> None:
        position = await self.view.load()
        self._position = position
        config = consumer_config(self.view.durable, self.subject, position, self.batch_size, self.ack_wait)
        done = await place_consumer(self.js, self.stream, config, position)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        # nats-py directly: faststream's batch pull subscriber stalls on fetch timeouts (faststream#2219)
        self._sub = await self.js.pull_subscribe_bind(self.view.durable, self.stream)
        self.log.info("consumer.started", consumer_state=done, position=position)

    async def stop(self) -> None:
        """Stop fetching; a batch not committed yet is rolled back and, unacked, delivered again."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self.max_wait + 5.0)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()  # the durable stays on the server; only this client leaves
        self.log.info("consumer.stopped")

    async def _run(self) -> None:
        # The next batch is fetched and read while one is applied: its commit waits on the database,
        # not on NATS, and the CPU of reading it runs while the database works on the one before.
        fetching = asyncio.create_task(self._fetch())
        try:
            while not self._stopping.is_set():
                fetched = await fetching
                if fetched is None:  # a reconnect, or the consumer gone: bind again
                    await asyncio.sleep(1.0)
                    try:
                        await self._bind()
                    except Exception as exc:  # noqa: BLE001 - still down: the next round tries again
                        self.log.warning("consumer.bind_failed", error=repr(exc)[:300])
                elif not fetched.batch and time.monotonic() >= self._next_ack_check:
                    await self._clear_lost_acks()  # idle, and no fetch in flight: safe to bind again
                fetching = asyncio.create_task(self._fetch())
                if fetched is not None and fetched.batch:
                    await self.handle(fetched)
        finally:
            fetching.cancel()
            left = await asyncio.gather(fetching, return_exceptions=True)
            for m in left[0].by_seq.values() if isinstance(left[0], Fetched) else []:  # never applied: back at once
                with contextlib.suppress(Exception):
                    await m.nak()

    async def _clear_lost_acks(self) -> None:
        """A server restarted before it stored some acks holds those deliveries as unacknowledged and
        sends them again only after `ack_wait`. When idle with everything delivered already applied,
        any such delivery is one of those: put the consumer back right after the view's position."""
        self._next_ack_check = time.monotonic() + LOST_ACK_CHECK_S
        try:
            info = await self.js.consumer_info(self.stream, self.view.durable)
            unacked, delivered = int(info.num_ack_pending or 0), int(info.delivered.stream_seq or 0)
            if unacked and delivered <= self._position:
                self.log.info("consumer.lost_acks", unacked=unacked, delivered=delivered, position=self._position)
                await self._bind()
        except Exception as exc:  # noqa: BLE001 - NATS away: the fetches will say so and bind again
            self.log.warning("consumer.ack_check_failed", error=repr(exc)[:300])

    async def _fetch(self) -> Fetched | None:
        """A batch and the view's reading of it, empty if nothing came within `max_wait`, None if the
        fetch failed."""
        try:
            msgs: list[Any] = await self._sub.fetch(batch=self.batch_size, timeout=self.max_wait)
        except TimeoutError:  # nats' own and asyncio's: nothing new
            return Fetched({}, [], None)
        except Exception as exc:  # noqa: BLE001 - the caller binds again
            self.log.warning("consumer.fetch_failed", error=repr(exc)[:300])
            return None
        if self.linger > 0 and len(msgs) < self.batch_size:
            msgs += await self._rest_of_burst(self.batch_size - len(msgs))
        return self.fetched(msgs)

    def fetched(self, msgs: list[Any]) -> Fetched:
        """The view's messages of a fetched batch, and the view's reading of them."""
        by_seq = {stream_seq(m): m for m in msgs}
        batch = [Message(seq, m.subject, m.data) for seq, m in by_seq.items()]
        try:
            read = self.view.read(batch)
        except Exception:  # noqa: BLE001 - left to `apply`, which reads it again and fails where a failure is handled
            read = None
        return Fetched(by_seq, batch, read)

    async def _rest_of_burst(self, room: int) -> list[Any]:
        await asyncio.sleep(self.linger)
        try:
            return list(await self._sub.fetch(batch=room, timeout=0.01))
        except Exception:  # noqa: BLE001 - nothing more (a timeout) or a connection hiccup: apply what we have
            return []

    async def handle(self, fetched: Fetched) -> Applied | None:
        by_seq, batch, read = fetched
        try:
            out = await self.view.apply(batch, self.first_available, read)
            if out.deferred and await self._first_available_moved():
                out = await self.view.apply(batch, self.first_available, read)
        except Exception as exc:  # nothing was kept: the batch comes again
            full = disk_full(exc)
            if full is None:
                self.log.exception("consumer.batch_failed", size=len(batch))
            elif self.trouble is None:  # one line when it starts, none while it lasts
                self._trouble_since = time.monotonic()
                self.log.error("consumer.disk_full", reason=full, size=len(batch), action="paused until space returns")
            self.trouble = f"disk full: {full}" if full else None
            for m in by_seq.values():
                with contextlib.suppress(Exception):
                    await m.nak(delay=2.0 if full else 1.0)
            return None
        if self.trouble is not None and out.position > self._position:  # a batch written, not only put off
            self.log.warning("consumer.resumed", after_s=round(time.monotonic() - self._trouble_since, 1))
            self.trouble = None
        self._position = max(self._position, out.position)
        deferred = set(out.deferred)
        try:
            for seq, m in by_seq.items():
                await (m.nak(delay=0.5) if seq in deferred else m.ack())
        except Exception as exc:  # noqa: BLE001 - committed but not acked: they come again, already applied
            self.log.warning("consumer.ack_failed", error=repr(exc)[:300])
        if deferred:
            self.log.warning("consumer.gap", position=out.position, deferred=len(deferred))
        return out

    async def _first_available_moved(self) -> bool:
        """Whether the stream's first message moved on: a gap below it is retention, not loss."""
        first = int((await self.js.stream_info(self.stream)).state.first_seq)
        moved, self.first_available = first > self.first_available, first
        return moved
