"""The working calendars the notifier counts working days on: the years published
(WorkingCalendarPublished events, kept in its own table `notify_calendars`, written in the same
transaction as the position that passes them), every other year from the `holidays` package.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import Event, WorkingCalendarPublished
from services.notify.store import published_years
from workflows.calendar import ChinaCalendar, YearCalendar


def _dates(raw: str) -> list[dt.date]:
    return [dt.date.fromisoformat(d) for d in orjson.loads(raw)]


async def load(conn: AsyncConnection) -> ChinaCalendar:
    """The published years as stored, over the package."""
    rows = await conn.execute(select(published_years.c.year, published_years.c.days_off, published_years.c.workdays))
    return ChinaCalendar(
        YearCalendar(year=year, days_off=_dates(off), make_up_workdays=_dates(on)) for year, off, on in rows
    )


async def record(conn: AsyncConnection, events: Sequence[Event]) -> bool:
    """Store the publications among `events` (a later revision of a year replaces an earlier one);
    True if there was any."""
    published = [e for e in events if e.type == WorkingCalendarPublished.TYPE]
    for event in published:
        fact = event.fact()
        assert isinstance(fact, WorkingCalendarPublished)
        row = {
            "year": fact.year, "revision": fact.revision, "source": fact.source, "event_id": event.event_id,
            "days_off": orjson.dumps(sorted(d.isoformat() for d in fact.holidays)).decode(),
            "workdays": orjson.dumps(sorted(d.isoformat() for d in fact.workdays)).decode(),
            "published_at": event.occurred_at.astimezone(dt.UTC),
        }  # fmt: skip
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(published_years).values(row)
        changed = {k: stmt.excluded[k] for k in row if k != "year"}
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[published_years.c.year],
                set_=changed,
                where=published_years.c.revision < stmt.excluded.revision,
            )
        )
    return bool(published)
