"""The notifier's database: subscriptions, the deliveries (one per event, recipient and channel), the
task titles the messages name, and the consumer's position."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, UniqueConstraint, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import registry
from sqlalchemy.sql.dml import Insert
from sqlmodel import Field, SQLModel

from services.shared import migrate
from services.shared.projection_tables import table_of

# The owner of the city-wide supervisors' own subscriptions (red escalations go there as well as to
# the unit); a supervisor with an area keeps one list per part of it, `_supervisors:unit:<id>` and
# `_supervisors:task:<programme>/<n>`, so an event finds its supervisors by name, without a scan.
SUPERVISORS = "_supervisors"


def supervisor_owners(supervises: tuple[str, ...]) -> list[str]:
    """The owners a supervisor's own subscriptions are kept under (its area's parts, or city-wide)."""
    return [f"{SUPERVISORS}:{part}" for part in sorted(supervises)] or [SUPERVISORS]


def supervisors_of(programme_id: str, task_no: int | None, unit_id: str) -> tuple[str, ...]:
    """Whose own subscriptions hear of an event of this assignment: the city's, the unit's 督查室 and
    the task's supervisors."""
    task = (f"{SUPERVISORS}:task:{programme_id}/{task_no}",) if task_no is not None else ()
    return (SUPERVISORS, f"{SUPERVISORS}:unit:{unit_id}", *task)


def is_supervisors(owner: str) -> bool:
    return owner == SUPERVISORS or owner.startswith(f"{SUPERVISORS}:")


class NotifyModel(SQLModel, registry=registry()):
    """The notifier's tables: `metadata` is what its alembic environment migrates."""


metadata = NotifyModel.metadata


class Subscription(NotifyModel, table=True):
    """An address a unit (or the supervisors) wants to be told at."""

    __tablename__ = "notify_subscriptions"

    owner: str = Field(primary_key=True, sa_type=String(100))
    channel: str = Field(primary_key=True, sa_type=String(10))  # email | webhook
    address: str = Field(primary_key=True, sa_type=String(500))
    secret: str | None = Field(default=None, sa_type=String(100))  # a webhook's HMAC key
    created_at: dt.datetime = Field(sa_type=DateTime(timezone=True))


class Delivery(NotifyModel, table=True):
    """One message to one recipient over one channel, made once per event (the id is derived from
    the three, so a redelivered event finds its rows already there)."""

    __tablename__ = "notify_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "channel", "recipient", name="uq_notify_delivery"),
        Index("ix_notify_due", "status", "next_attempt_at"),
        Index("ix_notify_owner", "owner", "created_at"),
        Index("ix_notify_day", "owner", "channel", "recipient", "day"),
    )

    id: str = Field(primary_key=True, sa_type=String(40))
    event_id: str = Field(sa_type=String(200))
    stream_seq: int = Field(sa_type=BigInteger)
    event_type: str = Field(sa_type=String(64))
    owner: str = Field(sa_type=String(100))
    unit_id: str | None = Field(default=None, sa_type=String(100))
    assignment_id: str | None = Field(default=None, sa_type=String(200))
    channel: str = Field(sa_type=String(10))
    recipient: str = Field(sa_type=String(500))
    level: str | None = Field(default=None, sa_type=String(10))
    subject: str = Field(sa_type=Text)
    text: str = Field(sa_type=Text)
    link: str | None = Field(default=None, sa_type=Text)
    status: str = Field(sa_type=String(12))  # pending | sent | dead | folded (into a daily digest)
    attempts: int = Field(default=0, sa_type=Integer)
    not_before: dt.datetime = Field(sa_type=DateTime(timezone=True))  # quiet hours hold it until then
    next_attempt_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    sent_at: dt.datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    occurred_at: dt.datetime = Field(sa_type=DateTime(timezone=True))
    day: str | None = Field(default=None, sa_type=String(10))  # Beijing day it may go out (digest counting)
    digest_id: str | None = Field(default=None, sa_type=String(40))  # the digest a folded notice went into


class KnownAssignment(NotifyModel, table=True):
    """What AssignmentCreated said of an assignment: the later events carry no task title."""

    __tablename__ = "notify_assignments"

    assignment_id: str = Field(primary_key=True, sa_type=String(200))
    programme_id: str = Field(sa_type=String(100))
    task_no: int | None = Field(default=None)
    unit_id: str | None = Field(default=None, sa_type=String(100))
    task_title: str = Field(sa_type=Text)
    lead_assignment_id: str | None = Field(default=None, sa_type=String(200))


class Position(NotifyModel, table=True):
    """The highest stream sequence whose deliveries are committed (written with them)."""

    __tablename__ = "notify_position"

    consumer: str = Field(primary_key=True, sa_type=String(100))
    stream_seq: int = Field(sa_type=BigInteger)
    updated_at: dt.datetime = Field(sa_type=DateTime(timezone=True))


class Reject(NotifyModel, table=True):
    """A message of the stream that could not be read (not JSON, not an event, an unknown type or a
    payload that does not match its type): recorded for supervisors, then terminated so that it is
    not delivered again; the position moves past it in the same transaction."""

    __tablename__ = "notify_rejects"

    id: str = Field(primary_key=True, sa_type=String(40))
    stream_seq: int = Field(sa_type=BigInteger)
    subject: str = Field(sa_type=String(300))
    event_id: str | None = Field(default=None, sa_type=String(200))
    reason: str = Field(sa_type=Text)
    body: str = Field(sa_type=Text)  # the start of the message, as text
    received_at: dt.datetime = Field(sa_type=DateTime(timezone=True))


class PublishedYear(NotifyModel, table=True):
    """A year's working calendar as published (WorkingCalendarPublished, its latest revision): quiet hours
    and digests count working days on it; a year without one is read from the `holidays` package."""

    __tablename__ = "notify_calendars"

    year: int = Field(primary_key=True, sa_type=Integer, sa_column_kwargs={"autoincrement": False})
    revision: int = Field(sa_type=Integer)
    days_off: str = Field(sa_type=Text)  # JSON list of ISO dates
    workdays: str = Field(sa_type=Text)  # JSON list of ISO dates: weekend days worked (调休)
    source: str = Field(sa_type=String(200))
    event_id: str = Field(sa_type=String(200))
    published_at: dt.datetime = Field(sa_type=DateTime(timezone=True))


subscriptions = table_of(Subscription)
deliveries = table_of(Delivery)
known_assignments = table_of(KnownAssignment)
positions = table_of(Position)
rejects = table_of(Reject)
published_years = table_of(PublishedYear)


async def create_tables(engine: AsyncEngine) -> None:
    """The schema at head: alembic `upgrade head` (services/notify/migrations), under the migration lock."""
    await migrate.upgrade(engine, "notify")


def utc(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite gives back naive datetimes: every time stored here is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def insert_ignoring_duplicates(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).values(rows).on_conflict_do_nothing()  # type: ignore[no-any-return]


async def move_position(conn: AsyncConnection, consumer: str, seq: int, now: dt.datetime) -> None:
    """Raise the stored position to `seq` (never lower it: messages are handled concurrently)."""
    done = await conn.execute(
        update(positions)
        .where(positions.c.consumer == consumer, positions.c.stream_seq < seq)
        .values(stream_seq=seq, updated_at=now)
    )
    if done.rowcount == 0:
        stmt = insert_ignoring_duplicates(
            conn, positions, [{"consumer": consumer, "stream_seq": seq, "updated_at": now}]
        )
        await conn.execute(stmt)
