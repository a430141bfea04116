"""Reads over the ledger for the API: filtered pages and streams, history, replay, verify.

Everything that can touch the whole ledger streams it in keyset-paged chunks (store.stream_rows),
so the service's memory does not grow with the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.fold import AssignmentState, advance, event_and_fact
from services.audit.ledger import utc_text
from services.audit.store import checkpoints, cosignatures_of, ledger, stream_rows
from services.audit.verify import ChainVerifier, StoredEntry
from services.shared import access

META = (
    ledger.c.ledger_seq,
    ledger.c.stream_seq,
    ledger.c.event_id,
    ledger.c.type,
    ledger.c.programme_id,
    ledger.c.assignment_id,
    ledger.c.unit_id,
    ledger.c.seq,
    ledger.c.occurred_at,
    ledger.c.prev_hash,
    ledger.c.hash,
    ledger.c.canonical,
)


@dataclass(frozen=True)
class EventFilter:
    """What `/v1/audit/events` narrows to, and the caller's area (None: the whole ledger)."""

    assignment_id: str | None = None
    unit_id: str | None = None
    type: str | None = None
    programme_id: str | None = None
    area: access.Area | None = None


def in_area(query: Any, area: access.Area | None) -> Any:
    """A supervisor's area on the ledger: the assignments' events of its units and tasks (the ledger
    has no task column: a task is the `programme.tNN.` of the assignment id); programme-wide facts
    only for those who see everything."""
    if area is None:
        return query
    cond = access.condition(area, ledger.c.programme_id, ledger.c.unit_id, assignment=ledger.c.assignment_id)
    if not area.everything:
        query = query.where(ledger.c.assignment_id.is_not(None))
    return query.where(cond)


def filtered(query: Any, f: EventFilter) -> Any:
    assignment_id, unit_id, type_ = f.assignment_id, f.unit_id, f.type
    if f.programme_id is not None:
        query = query.where(ledger.c.programme_id == f.programme_id)
    query = in_area(query, f.area)
    if assignment_id is not None:
        query = query.where(ledger.c.assignment_id == assignment_id)
    if unit_id is not None:
        query = query.where(ledger.c.unit_id == unit_id)
    if type_ is not None:
        query = query.where(ledger.c.type == type_)
    return query


def entry(row: Any, parsed: bool = True) -> dict[str, Any]:
    """A ledger row as the API shows it; `canonical` is the exact hashed text."""
    out = {c.name: getattr(row, c.name) for c in META}
    if parsed:
        out["event"] = json.loads(row.canonical)
    return out


async def page(engine: AsyncEngine, f: EventFilter, after_seq: int, limit: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        total = (await conn.execute(filtered(select(func.count()).select_from(ledger), f))).scalar_one()
        query = filtered(select(*META), f).where(ledger.c.ledger_seq > after_seq)
        rows = (await conn.execute(query.order_by(ledger.c.ledger_seq).limit(limit))).all()
    return {"items": [entry(r) for r in rows], "total": int(total)}


async def ndjson(engine: AsyncEngine, f: EventFilter, after_seq: int, limit: int | None) -> AsyncIterator[bytes]:
    """NDJSON lines, the export format: one entry per line, `canonical` verbatim, no parsed copy."""
    sent = 0
    query = filtered(select(*META), f)
    async for row in stream_rows(engine, query, (ledger.c.ledger_seq,), (after_seq,)):
        if limit is not None and sent >= limit:
            return
        yield (json.dumps(entry(row, parsed=False), ensure_ascii=False) + "\n").encode()
        sent += 1


PAGE = 4000  # rows per read of a whole-ledger walk: a few MB


async def history(engine: AsyncEngine, assignment_id: str) -> list[Any]:
    query = select(*META).where(ledger.c.assignment_id == assignment_id).order_by(ledger.c.seq, ledger.c.ledger_seq)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def replay(
    engine: AsyncEngine,
    as_of: dt.datetime,
    unit_id: str | None,
    task_no: int | None,
    programme_id: str | None = None,
    area: access.Area | None = None,
) -> AsyncIterator[AssignmentState]:
    """Each assignment's state as of `as_of`: the one fold over its events up to that time.

    Rows come ordered by (assignment, seq), so one state is held at a time and yielded as
    soon as the next assignment begins.
    """
    query = select(ledger.c.assignment_id, ledger.c.seq, ledger.c.canonical).where(
        ledger.c.assignment_id.is_not(None), ledger.c.occurred_at <= utc_text(as_of)
    )
    if unit_id is not None:
        query = query.where(ledger.c.unit_id == unit_id)
    if programme_id is not None:
        query = query.where(ledger.c.programme_id == programme_id)
    query = in_area(query, area)
    state: AssignmentState | None = None
    keys = (ledger.c.assignment_id, ledger.c.seq)
    async for assignment_id, _, canonical in stream_rows(engine, query, keys, ("", -1), PAGE):
        event, fact = event_and_fact(canonical)  # one validation for the envelope and its fact
        if task_no is not None and event.task_no != task_no:
            continue
        if state is not None and state.assignment_id != assignment_id:
            yield state
            state = None
        state = advance(state, event, fact)  # a fresh state per assignment, owned by this replay
    if state is not None:
        yield state


async def checkpoint_list(engine: AsyncEngine) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """Every checkpoint in size order, and the witnesses' cosignatures by checkpoint size."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(checkpoints).order_by(checkpoints.c.size))).mappings().all()
        cosigned: dict[int, list[dict[str, Any]]] = {}
        for c in await cosignatures_of(conn):
            cosigned.setdefault(int(c["size"]), []).append(c)
    return [dict(r) for r in rows], cosigned


async def verify(engine: AsyncEngine, public_key_pem: str, strict: bool = False) -> dict[str, Any]:
    """Check every checkpoint's signature, then the whole chain against them (verify.ChainVerifier)."""
    cps, _ = await checkpoint_list(engine)
    verifier = ChainVerifier(cps, strict=strict)  # each checkpoint with the key it was signed with
    columns = [ledger.c[name] for name in StoredEntry._fields]
    if verifier.failure is None:
        async for row in stream_rows(engine, select(*columns), (ledger.c.ledger_seq,), (0,), PAGE):
            if verifier.feed(StoredEntry._make(row)):
                break
    failure = verifier.finish()
    if failure is not None:
        return {"ok": False, "first_bad_seq": failure.ledger_seq, "reason": failure.reason}
    trusted = sum(1 for c in cps if c["public_key"] == public_key_pem)
    return {
        "ok": True,
        "strict": strict,
        "count": verifier.count,
        "head": verifier.head if verifier.count else None,
        "checkpoints_checked": verifier.checkpoints_checked,
        "checkpoints_with_current_key": trusted,
    }
