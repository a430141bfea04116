"""Turning a batch of JetStream messages into ledger rows, in one transaction.

Kept apart from the NATS wiring (subscribers.py) so it can be read, and tested, on its own.
The ledger has a single writer — this object, in one task — so it keeps the chain head, the
size and each stream key's highest sequence in memory and only reads what it has not seen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.events import FACT_TYPES, Event, event_id
from services.audit.ledger import GENESIS, canonical_json, entry_hash
from services.audit.store import (
    REJECT_KEEP_BYTES,
    gaps,
    insert_many,
    ledger,
    ledger_head,
    now_text,
    rejects,
    tracking,
    utc_text,
)

log = structlog.get_logger("audit.ingest")
FIRST_SEQ = 0  # AssignmentCreated (or ProgrammeImported) is seq 0 of its stream key


@dataclass(frozen=True)
class Message:
    """What ingest needs of a JetStream message (decoupled from nats-py for tests)."""

    stream_seq: int
    subject: str
    data: bytes


@dataclass
class BatchOutcome:
    appended: int = 0
    duplicates: int = 0
    rejected: list[int] = field(default_factory=list)  # stream seqs to terminate, not ack
    gaps: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0


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


class Ingestor:
    def __init__(self, engine: AsyncEngine, consumer: str) -> None:
        self.engine = engine
        self.consumer = consumer
        self.size = 0
        self.head = GENESIS
        self.position = 0
        self.last_seq: dict[str, int] = {}  # stream key -> highest seq in the ledger
        # Called first in each ingest transaction; raises if this process is not the writer (writer.py).
        self.fence: Callable[[AsyncConnection], Awaitable[None]] | None = None

    async def load(self) -> None:
        """Read the head, the size and the tracking position (creating its row on first start)."""
        async with self.engine.begin() as conn:
            self.size, head = await ledger_head(conn)
            self.head = bytes.fromhex(head) if head else GENESIS
            mine = tracking.c.consumer == self.consumer
            row = (await conn.execute(select(tracking.c.stream_seq).where(mine))).first()
            if row is None:
                start = {"consumer": self.consumer, "stream_seq": 0, "updated_at": now_text()}
                await conn.execute(tracking.insert(), [start])
            self.position = int(row.stream_seq) if row else 0
        self.last_seq.clear()

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

    async def ingest(self, messages: list[Message]) -> BatchOutcome:
        """Append the batch's new events and move the position, all in one transaction.

        On any database error nothing is kept, in memory or on disk, and the caller retries.
        """
        out = BatchOutcome(position=self.position)
        events: list[tuple[Message, Event, str]] = []
        bad: list[dict[str, Any]] = []
        received = now_text()
        # The CPU work (validation, canonical text) before the transaction opens.
        for m in sorted(messages, key=lambda m: m.stream_seq):
            out.position = max(out.position, m.stream_seq)
            try:
                event = parse(m.data)
                events.append((m, event, canonical_json(event)))
            except (ValidationError, ValueError) as exc:
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
                out.rejected.append(m.stream_seq)
        async with self.engine.begin() as conn:
            if self.fence is not None:
                await self.fence(conn)
            rows, gap_rows, last_seq = await self._rows(conn, events, out, received)
            if rows:
                await insert_many(conn, ledger, rows)
            if gap_rows:
                await conn.execute(gaps.insert(), gap_rows)
            if bad:
                await conn.execute(rejects.insert(), bad)
            # out.position started at self.position, so it never moves backwards.
            await conn.execute(
                update(tracking)
                .where(tracking.c.consumer == self.consumer)
                .values(stream_seq=out.position, updated_at=received)
            )
        # Committed: only now does the in-memory state move.
        if rows:
            self.size, self.head = rows[-1][0], bytes.fromhex(rows[-1][-1])
        self.last_seq.update(last_seq)
        self.position = out.position
        out.appended, out.gaps = len(rows), gap_rows
        for row in bad:
            log.warning("event.rejected", stream_seq=row["stream_seq"], subject=row["subject"], reason=row["reason"])
        for gap in gap_rows:
            log.warning("event.seq_gap", **{k: v for k, v in gap.items() if k != "detected_at"})
        return out

    async def _rows(
        self, conn: AsyncConnection, events: list[tuple[Message, Event, str]], out: BatchOutcome, now: str
    ) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]], dict[str, int]]:
        """Ledger rows (tuples in LEDGER_COLUMNS order) for the events not in the ledger yet."""
        if not events:
            return [], [], {}
        ids = list({e.event_id for _, e, _ in events})
        existing: set[str] = set()
        for lo in range(0, len(ids), 500):
            query = select(ledger.c.event_id).where(ledger.c.event_id.in_(ids[lo : lo + 500]))
            existing.update((await conn.execute(query)).scalars())
        await self._known_seqs(conn, {stream_key(e) for _, e, _ in events})
        last_seq: dict[str, int] = {}
        rows: list[tuple[Any, ...]] = []
        gap_rows: list[dict[str, Any]] = []
        size, head = self.size, self.head
        for m, e, text in events:
            if e.event_id in existing:  # redelivery, or the same event published twice
                out.duplicates += 1
                continue
            existing.add(e.event_id)
            key = stream_key(e)
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
            digest = entry_hash(head, text)
            rows.append(
                (
                    size,
                    e.event_id,
                    m.stream_seq,
                    e.programme_id,
                    e.assignment_id,
                    e.unit_id,
                    e.seq,
                    e.type,
                    utc_text(e.occurred_at),
                    text,
                    head.hex(),
                    digest.hex(),
                )
            )
            head = digest
        return rows, gap_rows, last_seq
