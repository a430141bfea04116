"""The daily digest: when an address of a unit would get more than NOTIFY_DIGEST_THRESHOLD notices
on one channel in one Beijing day (the day a notice may go out, after quiet hours), the first ones
go singly and the rest are folded into one digest, sent at the next working morning (the end of
the quiet-hours window, 07:30 when quiet hours are off). Red escalations are never folded (they
count towards the threshold all the same).

The digest is a delivery like the others, its id derived from (unit, day, channel, address), so a
redelivered event or a restart never makes a second one; the folded notices stay listed with the
status `folded` and the digest's id. Its text is rewritten as notices fold into it, never after
its first attempt: by then the day is over (a notice's day is never earlier than when it is made).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notify.messages import delivery_id
from services.notify.store import deliveries, is_supervisors
from workflows.calendar import SHANGHAI, WorkingCalendar, shanghai_date

DIGEST_TYPE = "DailyDigest"
MORNING = dt.time(7, 30)
Key = tuple[str, str, str, str]  # owner, channel, recipient, day


def day_of(release: dt.datetime) -> str:
    return shanghai_date(release).isoformat()


def digest_time(day: str, morning: dt.time, calendar: WorkingCalendar) -> dt.datetime:
    """The next working morning after `day` on `calendar`, in UTC."""
    after = calendar.add_working_days(dt.date.fromisoformat(day) + dt.timedelta(days=1), 0)
    return dt.datetime.combine(after, morning, tzinfo=SHANGHAI).astimezone(dt.UTC)


def _key(row: dict[str, Any]) -> Key:
    return (row["owner"], row["channel"], row["recipient"], row["day"])


async def fold(
    conn: AsyncConnection,
    rows: list[dict[str, Any]],
    threshold: int,
    morning: dt.time,
    now: dt.datetime,
    calendar: WorkingCalendar,
) -> list[dict[str, Any]]:
    """Mark the rows beyond the day's threshold as folded (in place) and return the digest rows
    they need. `rows` are new candidates in stream order; those already stored are not counted again."""
    stored = {
        r[0]
        for lo in range(0, len(rows), 500)
        for r in await conn.execute(
            select(deliveries.c.id).where(deliveries.c.id.in_([r["id"] for r in rows[lo : lo + 500]]))
        )
    }
    fresh = [r for r in rows if r["id"] not in stored and not is_supervisors(r["owner"])]
    keys = list({_key(r) for r in fresh})
    counts: dict[Key, int] = {}
    if keys:
        found = await conn.execute(
            select(deliveries.c.owner, deliveries.c.channel, deliveries.c.recipient, deliveries.c.day, func.count())
            .where(
                deliveries.c.event_type != DIGEST_TYPE,
                tuple_(deliveries.c.owner, deliveries.c.channel, deliveries.c.recipient, deliveries.c.day).in_(keys),
            )
            .group_by(deliveries.c.owner, deliveries.c.channel, deliveries.c.recipient, deliveries.c.day)
        )
        counts = {(o, c, r, d): int(n) for o, c, r, d, n in found}
    digests: dict[str, dict[str, Any]] = {}
    for row in fresh:
        key = _key(row)
        counts[key] = counts.get(key, 0) + 1
        if counts[key] <= threshold or row["level"] == "red":
            continue
        owner, channel, recipient, day = key
        event_id = f"digest:{owner}:{day}"
        did = delivery_id(event_id, channel, recipient)
        row["status"], row["digest_id"] = "folded", did
        at = digest_time(day, morning, calendar)
        digests.setdefault(did, {
            "id": did, "event_id": event_id, "stream_seq": row["stream_seq"], "event_type": DIGEST_TYPE,
            "owner": owner, "unit_id": row["unit_id"], "assignment_id": None, "channel": channel,
            "recipient": recipient, "level": None, "subject": "", "text": "", "link": None, "status": "pending",
            "attempts": 0, "not_before": at, "next_attempt_at": at, "last_error": None, "created_at": now,
            "sent_at": None, "occurred_at": at, "day": day, "digest_id": None,
        })  # fmt: skip
    return list(digests.values())


def _date(day: str) -> str:
    d = dt.date.fromisoformat(day)
    return f"{d.year}年{d.month}月{d.day}日"


async def write_texts(
    conn: AsyncConnection, digest_ids: list[str], threshold: int, name_of: Callable[[str], str]
) -> None:
    """(Re)write each digest's subject and text from the notices folded into it, until its first attempt."""
    for did in digest_ids:
        digest = (await conn.execute(select(deliveries).where(deliveries.c.id == did))).one()
        if digest.status != "pending" or digest.attempts:
            continue
        folded = (
            await conn.execute(
                select(deliveries.c.subject, deliveries.c.link)
                .where(deliveries.c.digest_id == did)
                .order_by(deliveries.c.stream_seq, deliveries.c.id)
            )
        ).all()
        unit = name_of(digest.unit_id or digest.owner)
        lines = [f"{i}. {s}" + (f"\n   {link}" if link else "") for i, (s, link) in enumerate(folded, 1)]
        subject = f"【每日汇总】{unit} {_date(digest.day)}的另外{len(folded)}条通知"
        text = (
            f"{unit}：{_date(digest.day)}已单独发送{threshold}条通知，其余{len(folded)}条汇总如下"
            f"（红色督办始终单独发送）：\n" + "\n".join(lines)
        )
        await conn.execute(
            update(deliveries)
            .where(and_(deliveries.c.id == did, deliveries.c.attempts == 0))
            .values(subject=subject, text=text)
        )
