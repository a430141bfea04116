"""The daily digest, with the intake's clock set by the test: the notices beyond the threshold fold
into one digest per (unit, day, channel, address), sent at the next working morning; red never folds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from services.notify.digest import DIGEST_TYPE, digest_time
from services.notify.settings import NotifySettings
from services.notify.store import create_tables, deliveries, subscriptions
from services.notify.subscribers import Intake
from services.shared.db import make_engine, sqlite_url
from tests.e2e.support import EventFactory
from workflows.calendar import SHANGHAI, ChinaCalendar


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at.astimezone(dt.UTC)


async def test_notices_beyond_the_threshold_fold_into_one_digest_the_next_working_morning(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "notify.sqlite"))
    await create_tables(engine)
    async with engine.begin() as conn:
        await conn.execute(subscriptions.insert(), [
            {"owner": "yuzhong", "channel": "webhook", "address": "http://h/yz", "secret": "s",
             "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
            {"owner": "yuzhong", "channel": "email", "address": "yz@example.org", "secret": None,
             "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
        ])  # fmt: skip
    clock = Clock(dt.datetime(2026, 1, 9, 10, 0, tzinfo=SHANGHAI))  # a Friday
    settings = NotifySettings(quiet_hours="", digest_threshold=2, public_base_url="https://pf.example")
    intake = Intake(engine, settings, clock)
    yellow = [EventFactory("cq-2022-79", i, "yuzhong").escalated("yellow") for i in range(1, 5)]
    red = EventFactory("cq-2022-79", 9, "yuzhong").escalated("red")
    batch = [(e, i) for i, e in enumerate([*yellow[:3], red], 1)]
    await intake.commit(batch)
    await intake.commit([(yellow[3], 5)])  # a later batch the same day
    await intake.commit(batch)  # redelivered: nothing counted twice
    async with engine.connect() as conn:
        rows = [r._mapping for r in await conn.execute(select(deliveries).order_by(deliveries.c.stream_seq))]
    for channel in ("webhook", "email"):
        mine = [r for r in rows if r["channel"] == channel]
        singles = [(r["stream_seq"], r["status"]) for r in mine if r["event_type"] != DIGEST_TYPE]
        # Two go singly; the third yellow folds; red (the fourth) goes singly; the fifth folds.
        assert singles == [(1, "pending"), (2, "pending"), (3, "folded"), (4, "pending"), (5, "folded")]
        [digest] = [r for r in mine if r["event_type"] == DIGEST_TYPE]
        monday = dt.datetime(2026, 1, 12, 7, 30, tzinfo=SHANGHAI)
        assert digest["status"] == "pending" and digest["next_attempt_at"].replace(tzinfo=dt.UTC) == monday
        assert {r["digest_id"] for r in mine if r["status"] == "folded"} == {digest["id"]}
        assert "每日汇总" in digest["subject"] and "另外2条" in digest["subject"]
        assert "第3项任务" in digest["text"] and "第4项任务" in digest["text"] and "红色" in digest["text"]
        assert "第1项任务" not in digest["text"]
    # The next Beijing day starts a new count: its first notice goes singly.
    clock.at = dt.datetime(2026, 1, 12, 9, 0, tzinfo=SHANGHAI)
    await intake.commit([(EventFactory("cq-2022-79", 20, "yuzhong").escalated("blue"), 6)])
    async with engine.connect() as conn:
        statuses = [r.status for r in await conn.execute(select(deliveries).where(deliveries.c.stream_seq == 6))]
    assert statuses == ["pending", "pending"]
    await engine.dispose()


def test_the_digest_goes_at_the_next_working_morning() -> None:
    at = dt.time(7, 30)
    package = ChinaCalendar()  # no year published: the `holidays` package's calendar
    assert digest_time("2026-01-07", at, package) == dt.datetime(2026, 1, 8, 7, 30, tzinfo=SHANGHAI)  # Wed -> Thu
    assert digest_time("2026-01-09", at, package) == dt.datetime(2026, 1, 12, 7, 30, tzinfo=SHANGHAI)  # Fri -> Mon
    assert digest_time("2026-01-03", at, package) == dt.datetime(2026, 1, 4, 7, 30, tzinfo=SHANGHAI)  # a 调休 Sunday
    assert digest_time("2026-09-30", at, package) == dt.datetime(2026, 10, 8, 7, 30, tzinfo=SHANGHAI)  # National Day
