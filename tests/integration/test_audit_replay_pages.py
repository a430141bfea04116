"""The replay's SQLite walk (each page read as one JSON text, the next read ahead) folds exactly what
the plain page walk folds, falls back to the plain read for any page that text cannot render
exactly, and stops cleanly when the reader goes away. A real SQLite ledger, no servers."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.fold import AssignmentState, advance, event_and_fact
from services.audit import queries
from services.audit.ledger import canonical_json, utc_text
from services.audit.store import create_tables, ledger
from services.shared.db import make_engine, sqlite_url
from tests.integration.audit_support import many_events

END = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)


async def plain_replay(
    engine: AsyncEngine, as_of: dt.datetime, unit_id: str | None, task_no: int | None
) -> list[AssignmentState]:
    """The replay as it was before the JSON pages: `queries.pages` over the plain statement."""
    query = select(ledger.c.assignment_id, ledger.c.seq, queries.canonical_bytes(engine, only_text=False)).where(
        ledger.c.assignment_id.is_not(None), ledger.c.occurred_at <= utc_text(as_of)
    )
    if unit_id is not None:
        query = query.where(ledger.c.unit_id == unit_id)
    out: list[AssignmentState] = []
    state: AssignmentState | None = None
    async for rows in queries.pages(engine, query, (ledger.c.assignment_id, ledger.c.seq), ("", -1)):
        for assignment_id, _, canonical in rows:
            event, fact = event_and_fact(canonical)
            if task_no is not None and event.task_no != task_no:
                continue
            if state is not None and state.assignment_id != assignment_id:
                out.append(state)
                state = None
            state = advance(state, event, fact)
    return [*out, state] if state is not None else out


def snapshot(states: list[AssignmentState]) -> list[Any]:
    """Every field, with its type, and the fields set: what 'the same state' means here."""
    return [(repr(s.__dict__), sorted(s.model_fields_set)) for s in states]


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    engine = make_engine(sqlite_url(tmp_path / "audit.sqlite"))
    await create_tables(engine)
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    rows = []
    for i, e in enumerate(many_events(9), start=1):  # the replay reads neither hash, so they are left blank
        text = canonical_json(e)
        rows.append((i, e.event_id, i, e.programme_id, e.assignment_id, e.unit_id, e.seq, e.type,
                     utc_text(e.occurred_at), text, "", ""))  # fmt: skip
    db.executemany(f"INSERT INTO ledger VALUES ({','.join('?' * 12)})", rows)
    db.commit()
    db.close()
    yield engine
    await engine.dispose()


async def replayed(engine: AsyncEngine, *args: Any) -> list[AssignmentState]:
    return [s async for s in queries.replay(engine, *args)]


@pytest.mark.parametrize("page", [7, 13, 4000])
async def test_json_pages_fold_what_the_plain_pages_fold(engine: AsyncEngine, page: int, monkeypatch: Any) -> None:
    monkeypatch.setattr(queries, "PAGE", page)  # 7: assignments split across pages; 13 divides no lifecycle
    cases = [(END, None, None), (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), None, None), (END, "unit0004", None),
             (END, None, 3), (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), None, None)]  # fmt: skip
    for args in cases:
        assert snapshot(await replayed(engine, *args)) == snapshot(await plain_replay(engine, *args)), args
    assert len(await replayed(engine, END, None, None)) == 9


async def test_a_page_the_json_text_cannot_render_is_read_plainly(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(queries, "PAGE", 7)
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    # The same text stored as a BLOB: the plain read passes its bytes to the parse, as before.
    db.execute("UPDATE ledger SET canonical = CAST(canonical AS BLOB) WHERE ledger_seq = 10")
    # seq stored as text: the keyset compares it as SQLite does, with the value's own type.
    db.execute("UPDATE ledger SET seq = CAST(seq AS TEXT) WHERE ledger_seq = 30")
    db.commit()
    assert snapshot(await replayed(engine, END, None, None)) == snapshot(await plain_replay(engine, END, None, None))

    # A NUL inside the stored text (JSON has no raw NUL): the parse refuses it on either walk,
    # after the states before it, rather than a text cut short at the NUL being folded.
    (text,) = db.execute("SELECT canonical FROM ledger WHERE ledger_seq = 40").fetchone()
    db.execute("UPDATE ledger SET canonical = ? WHERE ledger_seq = 40", (text + "\x00" + "x",))
    db.commit()
    db.close()
    for walk in (replayed, plain_replay):
        with pytest.raises(ValidationError):
            await walk(engine, END, None, None)


async def test_a_reader_that_stops_early_leaves_no_read_behind(engine: AsyncEngine, monkeypatch: Any) -> None:
    monkeypatch.setattr(queries, "PAGE", 7)
    states = queries.replay(engine, END, None, None)
    first = await anext(states)  # the next page is being read ahead now
    await states.aclose()
    assert first.assignment_id == (await plain_replay(engine, END, None, None))[0].assignment_id
    assert len(await replayed(engine, END, None, None)) == 9  # the engine's connections are all usable
