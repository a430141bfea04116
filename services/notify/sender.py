"""The sender loop: works through the delivery rows that are due, sends each, records the outcome.

A failure (SMTP down, a webhook's 5xx or timeout) is tried again after a backoff that doubles each
time; after NOTIFY_MAX_ATTEMPTS the delivery is dead-lettered, for a supervisor to see and re-send.
The outcomes of a batch are committed together once its sends are done: a crash before that
commit sends the batch's sent ones again, with the same delivery id.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import and_, bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notify.channels import Channels, Permanent
from services.notify.settings import NotifySettings
from services.notify.store import deliveries, subscriptions, utc

log = structlog.get_logger("notify.sender")
Clock = Callable[[], dt.datetime]


def backoff(settings: NotifySettings, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`, after `attempts` failures."""
    return float(min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(0, attempts - 1)))


def _error_words(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:500]


class Sender:
    def __init__(self, engine: AsyncEngine, channels: Channels, settings: NotifySettings, clock: Clock) -> None:
        self.engine, self.channels, self.settings, self.clock = engine, channels, settings, clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(settings.concurrency)
        self.sent = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notify-sender")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                done = await self.send_due()
            except Exception:  # the database or a bug: logged, tried again on the next round
                log.exception("notify.send_round_failed")
                done = 0
            if done < self.settings.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
                self._wake.clear()

    async def _due(self, now: dt.datetime) -> tuple[list[dict[str, Any]], dict[tuple[str, str], str | None]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(deliveries)
                .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now)
                .order_by(deliveries.c.next_attempt_at)
                .limit(self.settings.batch_size)
            )
            due = [dict(r._mapping) for r in rows]
            hooks = {(d["owner"], d["recipient"]) for d in due if d["channel"] == "webhook"}
            secrets: dict[tuple[str, str], str | None] = {}
            if hooks:
                found = await conn.execute(
                    select(subscriptions.c.owner, subscriptions.c.address, subscriptions.c.secret).where(
                        subscriptions.c.channel == "webhook",
                        tuple_(subscriptions.c.owner, subscriptions.c.address).in_(list(hooks)),
                    )
                )
                secrets = {(o, a): s for o, a, s in found}
        for d in due:
            d["occurred_at"] = utc(d["occurred_at"])
        return due, secrets

    async def _attempt(self, row: dict[str, Any], secret: str | None) -> tuple[dict[str, Any], BaseException | None]:
        async with self._limit:
            try:
                await self.channels.send(row, secret)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded on the delivery
                return row, exc
        return row, None

    def _change(self, row: dict[str, Any], exc: BaseException | None, now: dt.datetime) -> dict[str, Any]:
        attempts = int(row["attempts"]) + 1
        change: dict[str, Any] = {
            "b_id": row["id"], "attempts": attempts, "sent_at": None, "next_attempt_at": row["next_attempt_at"]
        }  # fmt: skip
        if exc is None:
            return change | {"status": "sent", "sent_at": now, "last_error": None}
        if isinstance(exc, Permanent) or attempts >= self.settings.max_attempts:
            log.warning("notify.dead_letter", delivery=row["id"], attempts=attempts, error=_error_words(exc))
            return change | {"status": "dead", "last_error": _error_words(exc)}
        wait = dt.timedelta(seconds=backoff(self.settings, attempts))
        log.info("notify.retry_later", delivery=row["id"], attempts=attempts, error=_error_words(exc))
        return change | {"status": "pending", "last_error": _error_words(exc), "next_attempt_at": now + wait}

    async def _store(self, changes: list[dict[str, Any]]) -> None:
        stmt = (
            update(deliveries)
            .where(and_(deliveries.c.id == bindparam("b_id"), deliveries.c.status == "pending"))
            .values(
                status=bindparam("status"),
                attempts=bindparam("attempts"),
                sent_at=bindparam("sent_at"),
                last_error=bindparam("last_error"),
                next_attempt_at=bindparam("next_attempt_at"),
            )
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt, changes)
        self.sent += sum(1 for c in changes if c["status"] == "sent")

    async def send_due(self) -> int:
        """One round: send what is due now (up to a batch); returns how many were tried.

        Outcomes are committed as they come, those finished meanwhile together, so that a crash
        repeats only the sends whose outcome was not yet stored.
        """
        due, secrets = await self._due(self.clock())
        if not due:
            return 0
        running = {asyncio.create_task(self._attempt(d, secrets.get((d["owner"], d["recipient"])))) for d in due}
        try:
            while running:
                finished, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                now = self.clock()
                await self._store([self._change(*t.result(), now) for t in finished])
        finally:
            for t in running:
                t.cancel()
        return len(due)
