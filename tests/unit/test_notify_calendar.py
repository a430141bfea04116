"""Quiet hours on the published working calendar: the notifier learns a year's publication from the
event stream (WorkingCalendarPublished), keeps it in its own table, and holds a notice made in quiet
time until the next working morning of that calendar; a year never published falls back to the
`holidays` package."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from contracts.base import Actor, UserRole
from contracts.events import Event, WorkingCalendarPublished, make_event
from contracts.working_calendar import calendar_stream
from services.notify.quiet import QuietHours
from services.notify.settings import NotifySettings
from services.notify.store import create_tables, deliveries, published_years, subscriptions
from services.notify.subscribers import Intake
from services.shared.db import make_engine, sqlite_url
from tests.e2e.support import EventFactory
from workflows.calendar import SHANGHAI, ChinaCalendar, YearCalendar, china_year

YEAR = 2030
PACKAGE = china_year(YEAR)
# The first Sunday of March that the package does not already make a working day.
SUNDAY = next(
    d
    for d in (dt.date(YEAR, 3, 1) + dt.timedelta(days=i) for i in range(31))
    if d.weekday() == 6 and d not in PACKAGE.make_up_workdays
)
SATURDAY = SUNDAY - dt.timedelta(days=1)
MONDAY = SUNDAY + dt.timedelta(days=1)
QUIET = QuietHours.parse("22:00-07:30")
SUPERVISOR = Actor(sub="sup-1", role=UserRole.SUPERVISOR)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SHANGHAI)


def published(revision: int, workdays: list[dt.date], holidays: list[dt.date] | None = None) -> Event:
    fact = WorkingCalendarPublished(
        year=YEAR, revision=revision, holidays=holidays or PACKAGE.days_off,
        workdays=sorted({*PACKAGE.make_up_workdays, *workdays}), source=f"国办发明电〔{YEAR - 1}〕{revision}号",
    )  # fmt: skip
    occurred = dt.datetime(YEAR - 1, 11, revision, tzinfo=dt.UTC)
    return make_event(
        fact, seq=revision - 1, occurred_at=occurred, programme_id=calendar_stream(YEAR), actor=SUPERVISOR
    )


def test_the_next_working_morning_over_a_published_make_up_sunday() -> None:
    assert QUIET is not None
    on_it = ChinaCalendar([YearCalendar(year=YEAR, days_off=PACKAGE.days_off, make_up_workdays=[SUNDAY])])
    saturday_night = at(SATURDAY, 23)
    assert QUIET.release(saturday_night, on_it) == at(SUNDAY, 7, 30).astimezone(dt.UTC)
    assert QUIET.release(at(SUNDAY, 10), on_it) == at(SUNDAY, 10).astimezone(dt.UTC)  # worked: not quiet
    # Not published: the package's calendar, on which that Sunday is a day off.
    assert QUIET.release(saturday_night, ChinaCalendar()) == at(MONDAY, 7, 30).astimezone(dt.UTC)
    # A published holiday on the Monday after: quiet all day, the morning after it.
    off = ChinaCalendar([YearCalendar(year=YEAR, days_off=[*PACKAGE.days_off, MONDAY])])
    assert QUIET.release(saturday_night, off) == at(MONDAY + dt.timedelta(days=1), 7, 30).astimezone(dt.UTC)


class Clock:
    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment

    def __call__(self) -> dt.datetime:
        return self.moment.astimezone(dt.UTC)


async def test_the_intake_keeps_publications_and_holds_notices_to_their_working_morning(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "notify.sqlite"))
    await create_tables(engine)
    async with engine.begin() as conn:
        row = {"owner": "yuzhong", "channel": "webhook", "address": "http://h/yz", "secret": "s",
               "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}  # fmt: skip
        await conn.execute(subscriptions.insert(), [row])
    settings = NotifySettings(quiet_hours="22:00-07:30", digest_threshold=0, public_base_url="https://pf.example")
    clock = Clock(at(SATURDAY, 23))
    units = EventFactory("cq-2022-79", 14, "yuzhong")

    async def released(seq: int) -> dt.datetime:
        async with engine.connect() as conn:
            held = (await conn.execute(select(deliveries.c.not_before).where(deliveries.c.stream_seq == seq))).one()[0]
        assert isinstance(held, dt.datetime)
        return held.replace(tzinfo=dt.UTC)

    intake = Intake(engine, settings, clock)
    await intake.commit([(units.escalated("red", YEAR), 1)])
    assert await released(1) == at(MONDAY, 7, 30)  # nothing published yet: the package

    # Published with the Sunday worked (one batch with the notice after it), then a redelivery.
    await intake.commit([(published(1, [SUNDAY]), 2), (units.escalated("red", YEAR), 3)])
    assert await released(3) == at(SUNDAY, 7, 30)
    # Republished without it (revision 2); revision 1 delivered again does not bring it back.
    await intake.commit([(published(2, []), 4)])
    await intake.commit([(published(1, [SUNDAY]), 2)])
    async with engine.connect() as conn:
        rows = [tuple(r) for r in await conn.execute(select(published_years.c.year, published_years.c.revision))]
    assert rows == [(YEAR, 2)]
    # A restarted notifier reads what was published from its table.
    restarted = Intake(engine, settings, clock)
    await restarted.commit([(units.escalated("red", YEAR), 5)])
    assert await released(5) == at(MONDAY, 7, 30)
    await engine.dispose()
