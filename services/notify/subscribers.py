"""The notifier's FastStream application: one subscriber on the event stream, a durable JetStream
pull consumer with manual acks.

This is the read side's one exception to the shared consumer runner: messages are handled one by
one. For each event the handler records the deliveries it causes (one per event, recipient and
channel, unique) and the consumer's position in one transaction, then acks; the sender loop
(services.notify.sender) sends them. Events that arrive together share one transaction (`Intake`
gathers them for a few milliseconds), so a burst costs one commit, not one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.errors import NotJSMessageError
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import AssignmentCreated, Event
from contracts.subjects import EVENT_SUBJECTS
from services.notify import calendars
from services.notify.digest import MORNING, day_of, fold, write_texts
from services.notify.messages import delivery_id, notice
from services.notify.names import UnitNames
from services.notify.poison import check_fact, poison_guard
from services.notify.quiet import QuietHours
from services.notify.settings import NotifySettings
from services.notify.store import deliveries as deliveries_table
from services.notify.store import insert_ignoring_duplicates, known_assignments, move_position, rejects, subscriptions
from services.shared.consumer import stream_seq
from services.shared.nats_urls import servers
from workflows.calendar import ChinaCalendar

log = structlog.get_logger("notify.intake")
Clock = Callable[[], dt.datetime]
DESCRIPTION = (
    "notification service: turns assignments, returned plans, reminders, escalations, failed "
    "verifications, cooperating units' reports and cancellations into e-mails and signed webhooks "
    "(a durable pull consumer, manual acks; deliveries and position committed before the ack)"
)


def consumer_config(settings: NotifySettings, start_seq: int = 0) -> ConsumerConfig:
    return ConsumerConfig(
        name=settings.durable,
        durable_name=settings.durable,
        filter_subject=EVENT_SUBJECTS,
        ack_policy=JsAckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait,
        max_ack_pending=4 * settings.batch_size,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start_seq else DeliverPolicy.ALL,
        opt_start_seq=start_seq or None,
    )


async def place_consumer(js: Any, settings: NotifySettings) -> str:
    """After a crash the server holds deliveries never acked; left alone they would come back only
    after the ack wait. Put the consumer back at its ack floor: what follows is delivered again at
    once, and what was already recorded is found there (the delivery rows are unique)."""
    try:
        info = await js.consumer_info(settings.event_stream, settings.durable)
    except NotFoundError:
        return "new"
    if not info.num_ack_pending:
        return "bound"
    floor = int(info.ack_floor.stream_seq or 0)
    await js.delete_consumer(settings.event_stream, settings.durable)
    await js.add_consumer(settings.event_stream, config=consumer_config(settings, floor + 1))
    log.info("notify.consumer_repositioned", ack_floor=floor, pending=info.num_ack_pending)
    return "repositioned"


def message_seq(raw: Any) -> int:
    """The stream sequence; 0 for a message that did not come through JetStream (FastStream's test broker)."""
    try:
        return stream_seq(raw)
    except (NotJSMessageError, ValueError, IndexError):
        return 0


class Intake:
    """Records the deliveries of events handed to it, a burst at a time, with the position."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: NotifySettings,
        clock: Clock,
        on_recorded: Callable[[], None] = lambda: None,
        linger: float = 0.005,
        names: UnitNames | None = None,
    ) -> None:
        self.engine, self.settings, self.clock, self.on_recorded = engine, settings, clock, on_recorded
        self.names = names
        self.quiet = QuietHours.parse(settings.quiet_hours)
        self.morning = self.quiet.end if self.quiet else MORNING
        self.linger = linger
        self.calendar: ChinaCalendar | None = None  # read from the database by the first commit
        self._waiting: list[tuple[Event, int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._titles: dict[str, str] = {}
        self.position = 0

    async def record(self, event: Event, seq: int) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, seq, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        await asyncio.sleep(self.linger)
        while self._waiting:
            batch, self._waiting = self._waiting[:1000], self._waiting[1000:]
            try:
                await self.commit([(e, s) for e, s, _ in batch])
            except Exception as exc:  # noqa: BLE001 - each waiting handler naks its message
                for _, _, f in batch:
                    if not f.done():
                        f.set_exception(exc)
            else:
                for _, _, f in batch:
                    if not f.done():
                        f.set_result(None)

    async def reject(self, seq: int, subject: str, body: bytes, reason: str, event_id: str | None) -> None:
        """Record an unreadable message and move the position past it, in one transaction."""
        now = self.clock()
        key = hashlib.sha256(f"{seq}\n{subject}\n".encode() + body).hexdigest()[:32]
        row = {
            "id": key, "stream_seq": seq, "subject": subject[:300], "event_id": event_id, "reason": reason,
            "body": body[:2000].decode("utf-8", errors="replace"), "received_at": now,
        }  # fmt: skip
        async with self.engine.begin() as conn:
            await conn.execute(insert_ignoring_duplicates(conn, rejects, [row]))
            if seq:
                await move_position(conn, self.settings.durable, seq, now)
        self.position = max(self.position, seq)

    async def _titles_of(self, conn: Any, ids: set[str]) -> dict[str, str]:
        missing = [i for i in ids if i not in self._titles]
        if missing:
            found = await conn.execute(
                select(known_assignments.c.assignment_id, known_assignments.c.task_title).where(
                    known_assignments.c.assignment_id.in_(missing)
                )
            )
            self._titles.update({str(a): str(t) for a, t in found})
        return {i: self._titles[i] for i in ids if i in self._titles}

    async def commit(self, batch: Sequence[tuple[Event, int]]) -> int:
        """One transaction: task titles, the deliveries, the position. Returns the rows new or not."""
        ordered = sorted(batch, key=lambda es: es[1])
        name_of: Callable[[str], str] = str
        if self.names is not None:
            await self.names.refresh({e.unit_id for e, _ in ordered if e.unit_id})
            name_of = self.names.name
        now = self.clock()
        rows: dict[str, dict[str, Any]] = {}
        async with self.engine.begin() as conn:
            calendar = self.calendar
            if await calendars.record(conn, [e for e, _ in ordered]) or calendar is None:
                calendar = await calendars.load(conn)
            release = self.quiet.release(now, calendar) if self.quiet else now
            day = day_of(release)
            created = [
                {
                    "assignment_id": e.assignment_id,
                    "programme_id": e.programme_id,
                    "task_no": e.task_no,
                    "unit_id": e.unit_id,
                    "task_title": e.payload.get("task_title", ""),
                    "lead_assignment_id": e.payload.get("lead_assignment_id"),
                }
                for e, _ in ordered
                if e.type == AssignmentCreated.TYPE and e.assignment_id
            ]
            if created:
                await conn.execute(insert_ignoring_duplicates(conn, known_assignments, created))
                self._titles.update({c["assignment_id"]: c["task_title"] for c in created})
            titles = await self._titles_of(conn, {e.assignment_id for e, _ in ordered if e.assignment_id})
            base = self.settings.public_base_url
            notices = [(e, s, notice(e, titles.get(e.assignment_id or ""), base, name_of)) for e, s in ordered]
            owners = {o for _, _, n in notices if n for o in n.owners}
            subs: dict[str, list[tuple[str, str]]] = {}
            if owners:
                found = await conn.execute(
                    select(subscriptions.c.owner, subscriptions.c.channel, subscriptions.c.address).where(
                        subscriptions.c.owner.in_(owners)
                    )
                )
                for owner, channel, address in found:
                    subs.setdefault(owner, []).append((channel, address))
            for event, seq, n in notices:
                if n is None:
                    continue
                for owner in n.owners:
                    for channel, address in subs.get(owner, []):
                        did = delivery_id(event.event_id, channel, address)
                        rows.setdefault(did, {
                            "id": did, "event_id": event.event_id, "stream_seq": seq, "event_type": event.type,
                            "owner": owner, "unit_id": event.unit_id, "assignment_id": event.assignment_id,
                            "channel": channel, "recipient": address, "level": n.level, "subject": n.subject,
                            "text": n.text, "link": n.link, "status": "pending", "attempts": 0,
                            "not_before": release, "next_attempt_at": release, "last_error": None,
                            "created_at": now, "sent_at": None, "occurred_at": event.occurred_at.astimezone(dt.UTC),
                            "day": day, "digest_id": None,
                        })  # fmt: skip
            values = list(rows.values())
            threshold = self.settings.digest_threshold
            digests = await fold(conn, values, threshold, self.morning, now, calendar) if threshold and values else []
            values += digests
            for lo in range(0, len(values), 500):
                await conn.execute(insert_ignoring_duplicates(conn, deliveries_table, values[lo : lo + 500]))
            if digests:
                await write_texts(conn, [d["id"] for d in digests], threshold, name_of)
            if ordered:
                await move_position(conn, self.settings.durable, ordered[-1][1], now)
        self.calendar = calendar  # committed: what the next batch counts on
        if ordered:
            self.position = max(self.position, ordered[-1][1])
        if rows:
            self.on_recorded()
        return len(rows)


def notifier_broker(settings: NotifySettings, intake: Intake | None = None) -> NatsBroker:
    """The FastStream broker with the notifier's subscriber. Without an intake (the documents'
    generator builds it that way) the broker is only described, never started."""
    guards = [poison_guard(intake.reject, message_seq)] if intake is not None else []
    broker = NatsBroker(
        servers(settings.nats_url),
        name="policyflow-notify",
        max_reconnect_attempts=-1,
        log_level=logging.DEBUG,
        middlewares=guards,
    )

    @broker.subscriber(
        EVENT_SUBJECTS,
        stream=JStream(settings.event_stream, declare=False),
        durable=settings.durable,
        config=consumer_config(settings),
        pull_sub=PullSub(batch_size=settings.batch_size, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
        title=settings.durable,
        description=DESCRIPTION,
    )
    async def on_event(event: Event, msg: NatsMessage) -> None:
        if intake is None:
            raise RuntimeError("the notifier's broker was built without an intake")
        check_fact(event)  # raises Unreadable: the guard records and terminates the message
        try:
            await intake.record(event, message_seq(msg.raw_message))
        except Exception:
            log.exception("notify.record_failed", event_id=event.event_id)
            with contextlib.suppress(Exception):
                await msg.nack(delay=1.0)
            return
        await msg.ack()

    return broker
