"""Event-sourced projections: fold events from the JetStream event stream into rows, exactly once.

Each service that needs a view of assignments keeps its own copy in its own database, built
with the one fold (`contracts.fold.apply`). A batch of messages is applied in one transaction
together with the consumer's stream position, so a redelivered or replayed message (at or
below the stored position) changes nothing, and a message that arrives ahead of a gap is sent
back until the gap is filled: rows are always the fold of a prefix of the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.js.api import DeliverPolicy
from pydantic import ValidationError
from sqlalchemy import MetaData, Table, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.calendar_facts import CALENDAR_FACTS, BulletinIssued, EvaluationOpened, ScoresSnapshotted
from contracts.events import Event, Fact, ProgrammeImported
from contracts.fold import AssignmentState, advance, event_and_fact
from contracts.indicators import ProgrammeOutcomes
from services.shared.consumer import Message, in_order
from services.shared.projection_tables import ProjectionTables, row_of

log = structlog.get_logger()


@dataclass
class BatchOutcome:
    """What happened to each stream sequence in a batch: the caller acks or naks accordingly."""

    applied: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)  # ahead of a gap: send back for later
    skipped: list[int] = field(default_factory=list)  # unreadable: logged, position advanced past it
    position: int = 0


Readings = dict[int, "tuple[Event, Fact] | None"]  # stream seq -> its event and fact (None: unreadable)


def parse_event(data: bytes) -> tuple[Event, Fact] | None:
    """The event and its fact, validated once; None (logged) if it cannot be read."""
    try:
        event, fact = event_and_fact(data)
        if fact is None:
            fact = event.fact()  # unknown types or payloads fail here, not halfway through a fold
        return event, fact
    except (ValidationError, KeyError, ValueError) as exc:
        log.error("projection.unreadable_event", error=str(exc)[:500])
        return None


async def position(conn: AsyncConnection, tables: ProjectionTables, consumer: str) -> int:
    row = (await conn.execute(tables.position_query, {"b_consumer": consumer})).first()
    return int(row[0]) if row else 0


STATES_KEPT = 2000  # about 25 KB each in memory; the example programme has about 1,300 assignments


class KeptStates:
    """The assignment states a projection's committed batches left, as of its stored position.

    The fold reads an assignment's state back from its row (and validates its JSON) only when it
    is not kept here: reading every state back was half of each batch's CPU. The states are those
    of the rows at `position`, so they hold only while the stored position is still `position`:
    any other writer (a rebuild, another process that held the lease meanwhile) moves it, and a
    batch that finds another position starts from the rows again. At most `most` states are kept,
    the least recently folded dropped first.
    """

    def __init__(self, most: int = STATES_KEPT) -> None:
        self.most = most
        self.position: int | None = None
        self._states: OrderedDict[str, AssignmentState] = OrderedDict()

    def at(self, position: int) -> dict[str, AssignmentState]:
        """The states kept, if they are those of the rows at `position`; otherwise none (all forgotten)."""
        if position != self.position:
            self.clear()
        return dict(self._states)

    def keep(self, position: int, states: dict[str, AssignmentState]) -> None:
        """After a commit that moved the position to `position` and left these states."""
        self.position = position
        for aid, state in states.items():
            self._states[aid] = state
            self._states.move_to_end(aid)
        while len(self._states) > self.most:
            self._states.popitem(last=False)

    def clear(self) -> None:
        self._states.clear()
        self.position = None

    def __len__(self) -> int:
        return len(self._states)


async def apply_batch(
    engine: AsyncEngine,
    tables: ProjectionTables,
    consumer: str,
    messages: Sequence[tuple[int, bytes]],
    first_available: int = 1,
    kept: KeptStates | None = None,
    read: Readings | None = None,
) -> BatchOutcome:
    """Apply (stream_seq, data) messages in one transaction that also moves the consumer position.

    `first_available` is the stream's first sequence: a gap below it is retention, not loss.
    `kept`: the states the caller's earlier batches left (the single writer's own), used instead
    of reading their rows back while the stored position is theirs, and updated after the commit.
    `read`: the messages' `parse_event`, by stream seq, when the caller made it ahead.
    """
    data = dict(messages)
    try:
        async with engine.begin() as conn:
            start = await position(conn, tables, consumer)
            seqs, duplicates, deferred = in_order(data, start, first_available)
            out = BatchOutcome(duplicates=duplicates, deferred=deferred, position=seqs[-1] if seqs else start)
            ready = [(seq, read[seq] if read is not None and seq in read else parse_event(data[seq])) for seq in seqs]
            changed: dict[str, AssignmentState] = {}
            if ready:
                known = kept.at(start) if kept is not None else {}
                changed = await _fold_into(conn, tables, ready, known)
                await _move(conn, tables, consumer, start, out.position)
            for seq, parsed in ready:
                (out.applied if parsed is not None else out.skipped).append(seq)
    except BaseException:
        if kept is not None:  # states were advanced in place for a batch that was rolled back
            kept.clear()
        raise
    if kept is not None and ready:
        kept.keep(out.position, changed)
    return out


async def _fold_into(
    conn: AsyncConnection,
    tables: ProjectionTables,
    ready: list[tuple[int, tuple[Event, Fact] | None]],
    known: dict[str, AssignmentState],
) -> dict[str, AssignmentState]:
    """Fold the events into their assignments' rows; returns the states of the rows changed.

    `known`: states of rows as they stand, advanced in place (the batch owns them)."""
    events = [parsed for _, parsed in ready if parsed is not None]
    ids = {e.assignment_id for e, _ in events if e.assignment_id}
    a = tables.assignments
    states = {i: known[i] for i in ids if i in known}
    missing = sorted(ids - states.keys())
    if missing:
        for chunk in _chunks(missing, 500):
            rows = await conn.execute(tables.states_query, {"b_ids": chunk})
            for aid, raw in rows:
                states[aid] = AssignmentState.model_validate_json(raw)
    existing = set(states)
    changed: set[str] = set()
    for event, fact in events:
        if event.assignment_id is None:
            if isinstance(fact, ProgrammeImported):
                await _record_programme(conn, tables, event, fact)
            elif isinstance(fact, CALENDAR_FACTS) and tables.calendar is not None:
                await _record_calendar_date(conn, tables.calendar, event, fact)
            continue
        if event.task_no is None or event.unit_id is None:
            log.error("projection.event_without_assignment_fields", event_id=event.event_id)
            continue
        # the batch owns these states (loaded from rows just now), so advance them in place
        states[event.assignment_id] = advance(states.get(event.assignment_id), event, fact)
        changed.add(event.assignment_id)
    inserts = [row_of(states[i]) for i in sorted(changed - existing)]
    updates = [{**row_of(states[i]), "b_id": i} for i in sorted(changed & existing)]
    if inserts:
        await conn.execute(a.insert(), inserts)
    if updates:
        await conn.execute(tables.state_update, updates)
    return {i: states[i] for i in changed}


async def _record_programme(
    conn: AsyncConnection, tables: ProjectionTables, event: Event, fact: ProgrammeImported
) -> None:
    p = tables.programmes
    seen = (await conn.execute(select(p.c.programme_id).where(p.c.programme_id == event.programme_id))).first()
    values = {
        "document_no": fact.document_no,
        "title": fact.title,
        "task_count": fact.task_count,
        "responsibility_count": fact.responsibility_count,
        "content_sha256": fact.content_sha256,
        "imported_at": event.occurred_at,
    }
    if seen:
        await conn.execute(update(p).where(p.c.programme_id == event.programme_id).values(values))
    else:
        await conn.execute(p.insert().values(programme_id=event.programme_id, **values))
    o = tables.outcomes
    if o is not None:
        declared = {
            "outcomes": (fact.outcomes or ProgrammeOutcomes()).model_dump_json(),
            "declared_at": event.occurred_at,
        }
        await conn.execute(delete(o).where(o.c.programme_id == event.programme_id))
        await conn.execute(o.insert().values(programme_id=event.programme_id, **declared))


async def _record_calendar_date(conn: AsyncConnection, table: Table, event: Event, fact: Fact) -> None:
    """A programme's calendar date, once per programme and key (a second event for it changes nothing)."""
    assert isinstance(fact, BulletinIssued | ScoresSnapshotted | EvaluationOpened)
    if isinstance(fact, BulletinIssued):
        kind, year, period = "bulletin", int(fact.period[:4]), fact.period
    else:
        kind = "snapshot" if isinstance(fact, ScoresSnapshotted) else "evaluation"
        year, period = fact.year, str(fact.year)
    key = f"{kind}:{period}"
    mine = and_(table.c.programme_id == fact.programme_id, table.c.key == key)
    if (await conn.execute(select(table.c.key).where(mine))).first() is not None:
        return
    await conn.execute(
        table.insert().values(
            programme_id=fact.programme_id,
            key=key,
            kind=kind,
            year=year,
            period=period,
            due_at=fact.due_at,
            recorded_at=event.occurred_at,
            event_id=event.event_id,
        )  # fmt: skip
    )


async def _move(conn: AsyncConnection, tables: ProjectionTables, consumer: str, start: int, last: int) -> None:
    """Move the position; the guard on the old value makes a concurrent writer's batch roll back."""
    t = tables.tracking
    now = dt.datetime.now(dt.UTC)
    res = await conn.execute(
        tables.position_move, {"b_consumer": consumer, "b_start": start, "b_last": last, "b_now": now}
    )
    if res.rowcount == 0:
        if start != 0:
            raise RuntimeError(f"projection {consumer} moved concurrently from {start}; batch rolled back")
        await conn.execute(t.insert().values(consumer=consumer, last_seq=last, updated_at=now))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def reset(engine: AsyncEngine, metadata: MetaData, tables: ProjectionTables) -> None:
    """Drop and recreate the projection's tables (nothing else in the metadata is touched)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: metadata.drop_all(c, tables=tables.all()))
        await conn.run_sync(lambda c: metadata.create_all(c, tables=tables.all()))


Progress = Callable[[int, int], None]


async def replay(
    js: Any,
    stream: str,
    subject: str,
    on_batch: Callable[[list[tuple[int, bytes]], int], Awaitable[None]],
    batch: int = 1000,
    progress: Progress | None = None,
    idle: float = 5.0,
) -> int:
    """Read the stream from its first message to its last (as of now) and hand over batches.

    An ephemeral ordered push consumer (no acks, flow-controlled): the only kind the readers'
    NATS permissions allow besides their own durable, and it vanishes when done. Messages come
    to a callback, which awaits `on_batch` itself, so batches are applied in stream order and
    flow control holds the server back meanwhile (`next_msg` cost a timer per message: about
    a third of the callback's rate). If nothing arrives for `idle` seconds while no batch is
    being applied, the stream ended earlier than its info said.
    """
    info = await js.stream_info(stream)
    first, end = int(info.state.first_seq), int(info.state.last_seq)
    if info.state.messages == 0 or end < first:
        if progress:
            progress(0, 0)
        return 0
    total = end - first + 1
    loop = asyncio.get_running_loop()
    items: list[tuple[int, bytes]] = []
    finished = asyncio.Event()
    failures: list[BaseException] = []
    done, busy, last_seen = 0, False, loop.time()

    async def flush() -> None:
        nonlocal items, done
        chunk, items = items, []
        await on_batch(chunk, first)
        done += len(chunk)
        if progress:
            progress(min(done, total), total)

    async def receive(msg: Any) -> None:
        nonlocal busy, last_seen
        if finished.is_set():
            return
        busy = True
        try:
            seq = int(msg.metadata.sequence.stream)
            if seq <= end:
                items.append((seq, msg.data))
            if len(items) >= batch or seq >= end:
                await flush()
            if seq >= end:
                finished.set()
        except Exception as exc:  # noqa: BLE001 - nats-py would only log what a callback raises: hand it back
            failures.append(exc)
            finished.set()
        finally:
            busy, last_seen = False, loop.time()

    sub = await js.subscribe(
        subject, stream=stream, cb=receive, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), timeout=idle / 4)
            if not finished.is_set() and not busy and loop.time() - last_seen >= idle:
                finished.set()  # nothing more came: the stream ended earlier than its info said
    finally:
        await sub.unsubscribe()
    if failures:
        raise failures[0]
    if items:
        await flush()
    return done


@dataclass
class Projection:
    """A projection as a view of the consumer runner (services.shared.consumer)."""

    engine: AsyncEngine
    tables: ProjectionTables
    durable: str
    states_kept: int = STATES_KEPT
    kept: KeptStates = field(init=False)

    def __post_init__(self) -> None:
        self.kept = KeptStates(self.states_kept)

    async def load(self) -> int:
        async with self.engine.connect() as conn:
            return await position(conn, self.tables, self.durable)

    def read(self, batch: list[Message]) -> Readings:
        return {m.stream_seq: parse_event(m.data) for m in batch}

    async def apply(self, batch: list[Message], first_available: int = 1, read: Readings | None = None) -> BatchOutcome:
        items = [(m.stream_seq, m.data) for m in batch]
        return await apply_batch(self.engine, self.tables, self.durable, items, first_available, self.kept, read)
