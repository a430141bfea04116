"""The access log as a view of the consumer runner (services.shared.consumer): each batch of the access
stream becomes rows of `access_log` in the transaction that moves the view's position, and its
refusals of named callers also become ledger entries in that transaction (contracts.access_log
`refusal_entry`); and the one query auditors ask of it (`GET /v1/audit/access`, `policyflow audit access`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.access_log import ACCESS_DURABLE, AccessBatch, AccessDecided, ledgered, refusal_entry
from services.audit.ingest import Entry
from services.audit.ledger import canonical_bytes, utc_text
from services.audit.store import access_records, now_text, tracked_position, tracking
from services.shared.consumer import Message, in_order

log = structlog.get_logger("audit.access")


@dataclass
class AccessOutcome:
    position: int = 0
    deferred: list[int] = field(default_factory=list)
    stored: int = 0
    ledgered: int = 0  # refusals appended to the ledger


class Ledger(Protocol):
    """Where refusals are appended: the ledger's single writer (services.audit.ingest.Ingestor)."""

    async def append_own(self, entries: list[Entry], then: Callable[[AsyncConnection], Awaitable[None]]) -> int: ...


class AccessView:
    durable = ACCESS_DURABLE

    def __init__(self, engine: AsyncEngine, ledger: Ledger) -> None:
        self.engine, self.ledger, self.position = engine, ledger, 0

    async def load(self) -> int:
        async with self.engine.begin() as conn:
            self.position = await tracked_position(conn, self.durable)
        return self.position

    async def restart_if_new(self, last_seq: int) -> None:
        """The stream was made anew (a restore onto a new NATS): read it from its start. The rows
        kept stay; only the position goes back."""
        if last_seq >= self.position:
            return
        log.warning("access.stream_new", position=self.position, stream_last_seq=last_seq)
        async with self.engine.begin() as conn:
            mine = tracking.c.consumer == self.durable
            await conn.execute(update(tracking).where(mine).values(stream_seq=0, updated_at=now_text()))
        self.position = 0

    def read(self, batch: list[Message]) -> None:  # noqa: ARG002 - the records are small: read in `apply`
        return None

    async def apply(self, batch: list[Message], first_available: int = 1, read: None = None) -> AccessOutcome:  # noqa: ARG002
        by_seq = {m.stream_seq: m for m in batch}
        ready, _, deferred = in_order(by_seq, self.position, first_available)
        out = AccessOutcome(position=max([self.position, *ready]), deferred=deferred)
        if not ready:
            return out
        records = [(seq, r) for seq in ready for r in _records(by_seq[seq])]
        rows = [{**r.model_dump(), "at": utc_text(r.at), "stream_seq": seq} for seq, r in records]

        async def store(conn: AsyncConnection) -> None:
            if rows:
                await conn.execute(access_records.insert(), rows)
            await conn.execute(
                update(tracking)
                .where(tracking.c.consumer == self.durable)
                .values(stream_seq=out.position, updated_at=now_text())
            )

        refusals = [_entry(seq, r) for seq, r in records if ledgered(r)]
        if refusals:
            out.ledgered = await self.ledger.append_own(refusals, store)
        else:
            async with self.engine.begin() as conn:
                await store(conn)
        self.position, out.stored = out.position, len(rows)
        return out


def _records(m: Message) -> list[AccessDecided]:
    try:
        return list(AccessBatch.model_validate_json(m.data).records)
    except ValidationError as exc:  # not ours: kept out of the log, said once
        log.warning("access.unreadable", stream_seq=m.stream_seq, subject=m.subject, error=str(exc)[:300])
        return []


def _entry(stream_seq: int, record: AccessDecided) -> Entry:
    """A refusal's ledger entry; its `stream_seq` is the access stream's."""
    value = refusal_entry(record)
    return Entry(
        stream_seq,
        str(value["event_id"]),
        str(value["programme_id"]),
        None,
        record.unit_id,
        0,
        str(value["type"]),
        utc_text(record.at),
        canonical_bytes(value).decode("utf-8"),
        "",
    )


@dataclass(frozen=True)
class AccessFilter:
    sub: str | None = None
    unit_id: str | None = None
    service: str | None = None
    refused: bool | None = None  # True: refusals only; False: allowed only
    since: dt.datetime | None = None
    until: dt.datetime | None = None


async def access_page(engine: AsyncEngine, f: AccessFilter, limit: int, offset: int) -> tuple[list[AccessDecided], int]:
    """The newest first, and how many match."""
    t = access_records.c
    conds: list[Any] = []
    if f.sub is not None:
        conds.append(t.sub == f.sub)
    if f.unit_id is not None:
        conds.append(t.unit_id == f.unit_id)
    if f.service is not None:
        conds.append(t.service == f.service)
    if f.refused is not None:
        conds.append(t.allowed.is_(not f.refused))
    if f.since is not None:
        conds.append(t.at >= utc_text(f.since))
    if f.until is not None:
        conds.append(t.at < utc_text(f.until))
    async with engine.connect() as conn:
        total = int((await conn.execute(select(func.count()).select_from(access_records).where(*conds))).scalar_one())
        query = select(access_records).where(*conds).order_by(t.at.desc(), t.id.desc()).limit(limit)
        rows = (await conn.execute(query.offset(offset))).mappings().all()
    items = [
        AccessDecided.model_validate(
            {**{k: v for k, v in r.items() if k not in ("id", "stream_seq")}, "at": _time(r["at"])}
        )
        for r in rows
    ]
    return items, total


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
