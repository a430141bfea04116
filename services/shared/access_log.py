"""Every access decision, sent to the access stream: who asked for what, allowed or refused, and why.

The middleware opens a record for each HTTP request; `note` (called where the caller is known and
where a rule decides: services.shared.web) fills it in; when the answer has gone out, a request that
named a caller or was refused (401/403) is queued. A background task publishes the queue to
JetStream, up to a hundred records a message (contracts.access_log.AccessBatch, with a
deterministic `Nats-Msg-Id`), and keeps what was not acknowledged for the next try, so a NATS
outage delays the log but the request never waits for it.
The audit service keeps the stream as a table (services/audit/access_view.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections import deque
from contextvars import ContextVar
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NatsClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.access_log import BATCH_MOST, AccessBatch, AccessDecided, access_stream_config, access_subject
from services.shared.background_nats import BackgroundNats
from services.shared.streams import ensure_stream

log = structlog.get_logger("access_log")
QUEUE_MOST = 20_000  # what waits for NATS: beyond it the oldest are dropped, and that is logged
_open: ContextVar[dict[str, Any] | None] = ContextVar("access_record", default=None)


def note(**fields: Any) -> None:
    """Add to the current request's record (nothing outside a request)."""
    record = _open.get()
    if record is not None:
        record.update({k: v for k, v in fields.items() if v is not None})


class AccessLog:
    """The queue and its publisher, one per service process (`start` in the lifespan)."""

    def __init__(self, service: str, connection: BackgroundNats, replicas: int = 1) -> None:
        self.service, self.connection, self.replicas = service, connection, replicas
        self.queue: deque[AccessDecided] = deque()
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stream_made = False

    def add(self, record: AccessDecided) -> None:
        if len(self.queue) >= QUEUE_MOST:
            self.queue.popleft()
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                log.error("access_log.dropped", service=self.service, dropped=self.dropped, waiting=len(self.queue))
        self.queue.append(record)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"access-log-{self.service}")

    async def stop(self) -> None:
        """Publish what is queued (a few seconds at most), then close."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        nc = self.connection.connected
        if nc is not None and self.queue:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publish_all(nc), 5)
        if self.queue:
            log.warning("access_log.unsent_at_stop", service=self.service, records=len(self.queue))

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                nc = await self.connection.client()
                if not self._stream_made:
                    await ensure_stream(nc.jetstream(), access_stream_config(self.replicas))
                    self._stream_made = True
                await self._wake.wait()
                self._wake.clear()
                await self._publish_all(nc)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except (OSError, nats.errors.Error) as exc:  # NATS away: keep the queue, try again
                if isinstance(exc, nats.errors.NoRespondersError):  # no stream takes the subject: make it again
                    self._stream_made = False
                log.warning("access_log.not_sent", service=self.service, waiting=len(self.queue), error=str(exc)[:200])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                self._wake.set()

    async def _publish_all(self, nc: NatsClient) -> None:
        js = nc.jetstream()
        subject = access_subject(self.service)
        while self.queue:
            batch = AccessBatch(records=[self.queue[i] for i in range(min(BATCH_MOST, len(self.queue)))])
            await js.publish(subject, batch.model_dump_json().encode(), headers={"Nats-Msg-Id": batch.batch_id()})
            for _ in batch.records:  # acknowledged: only now off the queue
                self.queue.popleft()


class AccessLogMiddleware:
    """Opens each request's record and queues it once answered (app.state.access_log, when started)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record: dict[str, Any] = {}
        token = _open.set(record)
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            _open.reset(token)
            sink = getattr(scope["app"].state, "access_log", None) if "app" in scope else None
            if sink is not None and ("sub" in record or status in (401, 403)):
                sink.add(decided(self.service, scope, status, record))


def decided(service: str, scope: Scope, status: int, record: dict[str, Any]) -> AccessDecided:
    route = scope.get("route")
    allowed = status not in (401, 403)
    # Allowed by the route's roles alone when no rule on a record said more (own unit, an area, ...).
    why = record.get("why") or (f"role {record['role']}" if allowed and "role" in record else "refused")
    return AccessDecided(
        request_id=uuid.uuid4().hex,
        at=dt.datetime.now(dt.UTC),
        service=service,
        method=str(scope.get("method", ""))[:10],
        route=str(getattr(route, "path", "") or scope.get("path", ""))[:200],
        path=str(scope.get("path", ""))[:500],
        status=status,
        allowed=allowed,
        why=str(why)[:500],
        sub=_cut(record.get("sub"), 200),
        role=_cut(record.get("role"), 32),
        unit_id=_cut(record.get("unit_id"), 100),
        target=_cut(record.get("target"), 200),
    )


def _cut(value: Any, most: int) -> str | None:
    return None if value is None else str(value)[:most]


def install(app: Any, service: str) -> None:
    """The middleware on `app`; records are queued once the lifespan has set `app.state.access_log`."""
    app.add_middleware(AccessLogMiddleware, service=service)


def started(service: str, connection: BackgroundNats, replicas: int = 1) -> AccessLog:
    sink = AccessLog(service, connection, replicas)
    sink.start()
    return sink
