"""The ledger as a view of the consumer runner: a batch of messages becomes ledger rows in one transaction.

The runner (services.shared.consumer) hands batches in; the ledger's own rule is the chain:
events are deduplicated by event id, each key's `seq` is checked (gaps are recorded), and each
entry's hash covers the one before. The ledger has a single writer (writer.py), so this object
keeps the chain head, the size and each stream key's highest sequence in memory and only reads
what it has not seen. `prepare` (validation and canonical text: no ledger state, no I/O) is
apart from `Ingestor.commit` (duplicates, the chain and the transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.events import FACT_TYPES, Event, event_id
from services.audit.ledger import GENESIS, canonical_json, entry_hash, utc_text
from services.audit.store import (
    REJECT_KEEP_BYTES,
    gaps,
    insert_many,
    ledger,
    ledger_head,
    now_text,
    rejects,
    tracked_position,
    tracking,
)
from services.shared.consumer import Message, in_order

log = structlog.get_logger("audit.ingest")
FIRST_SEQ = 0  # AssignmentCreated (or ProgrammeImported) is seq 0 of its stream key


@dataclass
class BatchOutcome:
    appended: int = 0
    duplicates: int = 0
    rejected: list[int] = field(default_factory=list)  # stream seqs set aside in `rejects`
    gaps: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0
    deferred: list[int] = field(default_factory=list)  # ahead of a gap in the stream: applied later


def stream_key(event: Event) -> str:
    """The key whose per-key `seq` the event id carries (see contracts.events.make_event)."""
    return event.assignment_id or f"programme:{event.programme_id}"


def parse(data: bytes) -> Event:
    """A contracts Event whose id, type and payload are all consistent, or ValueError."""
    event = Event.model_validate_json(data)
    if event.type not in FACT_TYPES:
        raise ValueError(f"unknown event type {event.type!r}")
    event.fact()  # the payload must be the fact it claims to be, or replay could not fold it
    if event.event_id != event_id(stream_key(event), event.seq):
        raise ValueError(f"event_id {event.event_id!r} does not match its stream key and seq {event.seq}")
    return event


class Entry(NamedTuple):
    """One valid event as a commit needs it: its ledger columns, canonical text and stream key."""

    stream_seq: int
    event_id: str
    programme_id: str
    assignment_id: str | None
    unit_id: str | None
    seq: int
    type: str
    occurred_at: str  # utc_text of the event's time
    canonical: str
    key: str  # stream_key


@dataclass
class Prepared:
    """A batch after its CPU work: valid events with their canonical text, and the rejects."""

    events: list[Entry]
    bad: list[dict[str, Any]]  # rows for `rejects`
    position: int  # the highest stream seq in the batch (0 if empty)
    received: str


def entry(m: Message) -> Entry:
    """The ledger entry of one message, or ValueError (ValidationError is one) if it cannot be one."""
    event = parse(m.data)
    return Entry(
        m.stream_seq,
        event.event_id,
        event.programme_id,
        event.assignment_id,
        event.unit_id,
        event.seq,
        event.type,
        utc_text(event.occurred_at),
        canonical_json(event),
        stream_key(event),
    )


def prepare(messages: list[Message]) -> Prepared:
    """Validate and canonicalise, in stream order. Pure: no ledger state, no I/O."""
    events: list[Entry] = []
    bad: list[dict[str, Any]] = []
    received = now_text()
    position = 0
    for m in sorted(messages, key=lambda m: m.stream_seq):
        position = max(position, m.stream_seq)
        try:
            events.append(entry(m))
        except (ValueError, OverflowError, RecursionError) as exc:  # also a number JCS cannot write, deep nesting
            reason = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
            bad.append(
                {
                    "stream_seq": m.stream_seq,
                    "subject": m.subject[:300],
                    "reason": reason,
                    "data": m.data[:REJECT_KEEP_BYTES],
                    "received_at": received,
                }
            )
    return Prepared(events, bad, position, received)


def only(prepared: Prepared, seqs: list[int]) -> Prepared:
    """The part of a prepared batch at these stream seqs (those not applied yet, in order)."""
    wanted = set(seqs)
    events = [e for e in prepared.events if e.stream_seq in wanted]
    bad = [b for b in prepared.bad if b["stream_seq"] in wanted]
    return Prepared(events, bad, max(seqs, default=0), prepared.received)


class Ingestor:
    def __init__(self, engine: AsyncEngine, durable: str) -> None:
        self.engine = engine
        self.durable = durable
        self.size = 0
        self.head = GENESIS
        self.position = 0
        self.last_seq: dict[str, int] = {}  # stream key -> highest seq in the ledger
        # After a (re)load, look every event id up once, however new its seq looks (see _duplicates).
        self.check_all_ids = True
        # Called first in each ingest transaction; raises if this process is not the writer (writer.py).
        self.fence: Callable[[AsyncConnection], Awaitable[None]] | None = None
        self.stale = True  # the in-memory state must be read (again) before the next batch
        # The ledger's two inputs (the events stream, and refusals from the access log) append one at
        # a time: each commit chains from the head the one before it left.
        self.appending = asyncio.Lock()

    async def load(self) -> int:
        """Read the head, the size and the tracking position (creating its row on first start)."""
        async with self.engine.begin() as conn:
            self.size, head = await ledger_head(conn)
            self.head = bytes.fromhex(head) if head else GENESIS
            self.position = await tracked_position(conn, self.durable)
        self.last_seq.clear()
        self.check_all_ids = True
        self.stale = False
        return self.position

    async def _known_seqs(self, conn: AsyncConnection, keys: set[str]) -> None:
        """Load the highest ledger seq of stream keys not in the cache yet."""
        missing = [k for k in keys if k not in self.last_seq]
        assignments = [k for k in missing if not k.startswith("programme:")]
        programmes = [k.removeprefix("programme:") for k in missing if k.startswith("programme:")]
        for k in missing:
            self.last_seq[k] = FIRST_SEQ - 1
        for lo in range(0, len(assignments), 500):
            query = (
                select(ledger.c.assignment_id, func.max(ledger.c.seq))
                .where(ledger.c.assignment_id.in_(assignments[lo : lo + 500]))
                .group_by(ledger.c.assignment_id)
            )
            for key, seq in await conn.execute(query):
                self.last_seq[key] = int(seq)
        if programmes:
            query = (
                select(ledger.c.programme_id, func.max(ledger.c.seq))
                .where(ledger.c.assignment_id.is_(None), ledger.c.programme_id.in_(programmes))
                .group_by(ledger.c.programme_id)
            )
            for programme, seq in await conn.execute(query):
                self.last_seq[f"programme:{programme}"] = int(seq)

    def read(self, batch: list[Message]) -> Prepared:
        return prepare(batch)

    async def apply(self, batch: list[Message], first_available: int = 1, read: Prepared | None = None) -> BatchOutcome:
        """Append the batch's new events and move the position, all in one transaction.

        Messages at or below the position are already in; those ahead of a gap in the stream
        are left for later (`deferred`), so entries are appended in stream order. After a
        failure the state is read again first: another writer may have moved the head.
        `read`: the batch's `prepare`, when the runner made it ahead.
        """
        async with self.appending:
            if self.stale:
                await self.load()
            by_seq = {m.stream_seq: m for m in batch}
            ready, _, deferred = in_order(by_seq, self.position, first_available)
            try:
                if ready:
                    out = await self.commit(prepare([by_seq[s] for s in ready]) if read is None else only(read, ready))
                else:
                    out = BatchOutcome()
            except BaseException:
                self.stale = True
                raise
        out.position, out.deferred = self.position, deferred
        return out

    async def append_own(self, entries: list[Entry], then: Callable[[AsyncConnection], Awaitable[None]]) -> int:
        """Append entries the audit service writes itself (refusals from the access log: no stream key
        and no per-key seq to check), in one transaction with `then` (which moves that input's own
        position). Entries whose id is in the ledger already are left out. Returns how many went in."""
        async with self.appending:
            if self.stale:
                await self.load()
            try:
                async with self.engine.begin() as conn:
                    if self.fence is not None:
                        await self.fence(conn)
                    existing = await _in_ledger(conn, list({e.event_id for e in entries}))
                    rows, size, head = [], self.size, self.head
                    for e in entries:
                        if e.event_id in existing:
                            continue
                        existing.add(e.event_id)
                        size += 1
                        digest = entry_hash(head, e.canonical)
                        rows.append(_row(size, e, head, digest))
                        head = digest
                    if rows:
                        await insert_many(conn, ledger, rows)
                    await then(conn)
            except BaseException:
                self.stale = True
                raise
            if rows:
                self.size, self.head = size, head
        return len(rows)

    async def commit(self, batch: Prepared) -> BatchOutcome:
        """Append a prepared batch's new events and move the position, all in one transaction.

        On any database error nothing is kept, in memory or on disk.
        """
        out = BatchOutcome(position=max(self.position, batch.position), rejected=[r["stream_seq"] for r in batch.bad])
        async with self.engine.begin() as conn:
            if self.fence is not None:
                await self.fence(conn)
            rows, gap_rows, last_seq = await self._rows(conn, batch.events, out, batch.received)
            if rows:
                await insert_many(conn, ledger, rows)
            if gap_rows:
                await conn.execute(gaps.insert(), gap_rows)
            if batch.bad:
                await conn.execute(rejects.insert(), batch.bad)
            # out.position started at self.position, so it never moves backwards.
            await conn.execute(
                update(tracking)
                .where(tracking.c.consumer == self.durable)
                .values(stream_seq=out.position, updated_at=batch.received)
            )
        # Committed: only now does the in-memory state move.
        if rows:
            self.size, self.head = rows[-1][0], bytes.fromhex(rows[-1][-1])
        self.last_seq.update(last_seq)
        self.position = out.position
        self.check_all_ids = False
        out.appended, out.gaps = len(rows), gap_rows
        for row in batch.bad:
            log.warning("event.rejected", stream_seq=row["stream_seq"], subject=row["subject"], reason=row["reason"])
        for gap in gap_rows:
            log.warning("event.seq_gap", **{k: v for k, v in gap.items() if k != "detected_at"})
        return out

    async def _duplicates(self, conn: AsyncConnection, events: list[Entry]) -> set[str]:
        """The batch's event ids already in the ledger.

        An event id is its stream key and seq (checked in `parse`), so an event whose seq is
        above its key's highest seq in the ledger (`last_seq`) cannot be there yet: only the
        others are looked up, usually none. Always looked up: programme keys (an assignment id
        could be spelt like one, and `_known_seqs` reads programme keys from programme rows
        only), and every id of the first batch after a (re)load, so that an in-memory state
        that disagrees with the database can never turn into a unique-constraint retry loop.
        """
        if self.check_all_ids:
            suspects = list({e.event_id for e in events})
        else:
            last_seq = self.last_seq
            suspects = list({e.event_id for e in events if e.key.startswith("programme:") or e.seq <= last_seq[e.key]})
        return await _in_ledger(conn, suspects)

    async def _rows(
        self, conn: AsyncConnection, events: list[Entry], out: BatchOutcome, now: str
    ) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]], dict[str, int]]:
        """Ledger rows (tuples in LEDGER_COLUMNS order) for the events not in the ledger yet."""
        if not events:
            return [], [], {}
        await self._known_seqs(conn, {e.key for e in events})
        existing = await self._duplicates(conn, events)
        last_seq: dict[str, int] = {}
        rows: list[tuple[Any, ...]] = []
        gap_rows: list[dict[str, Any]] = []
        size, head = self.size, self.head
        for e in events:
            if e.event_id in existing:  # redelivery, or the same event published twice
                out.duplicates += 1
                continue
            existing.add(e.event_id)
            key = e.key
            previous = last_seq.get(key, self.last_seq[key])
            size += 1
            if e.seq != previous + 1:
                # Recorded and logged, and the event is still kept: the ledger is what arrived.
                gap_rows.append(
                    {
                        "stream_key": key,
                        "expected_seq": previous + 1,
                        "got_seq": e.seq,
                        "event_id": e.event_id,
                        "ledger_seq": size,
                        "detected_at": now,
                    }
                )
            last_seq[key] = max(previous, e.seq)
            digest = entry_hash(head, e.canonical)
            rows.append(_row(size, e, head, digest))
            head = digest
        return rows, gap_rows, last_seq


async def _in_ledger(conn: AsyncConnection, event_ids: list[str]) -> set[str]:
    """Which of these event ids the ledger holds, asked 500 at a time (within every driver's parameters)."""
    found: set[str] = set()
    for lo in range(0, len(event_ids), 500):
        query = select(ledger.c.event_id).where(ledger.c.event_id.in_(event_ids[lo : lo + 500]))
        found.update((await conn.execute(query)).scalars())
    return found


def _row(size: int, e: Entry, prev: bytes, digest: bytes) -> tuple[Any, ...]:
    """A ledger row, a tuple in the table's column order."""
    return (
        size,
        e.event_id,
        e.stream_seq,
        e.programme_id,
        e.assignment_id,
        e.unit_id,
        e.seq,
        e.type,
        e.occurred_at,
        e.canonical,
        prev.hex(),
        digest.hex(),
    )
