"""The notification service application: `create_app(settings, clock)`; connections open in the lifespan."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI
from faststream.nats import NatsBroker

from services.notify import api
from services.notify.channels import Channels
from services.notify.names import UnitNames
from services.notify.sender import Sender
from services.notify.settings import NotifySettings
from services.notify.store import create_tables, known_assignments
from services.notify.subscribers import Intake, notifier_broker, place_consumer
from services.shared import access_log, oidc
from services.shared.auth import load_public_key
from services.shared.background_duties import BackgroundDuties
from services.shared.db import make_engine
from services.shared.lease import Lease, lock_file
from services.shared.web import install_error_handlers, install_liveness

log = structlog.get_logger()
Clock = Callable[[], dt.datetime]


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_app(settings: NotifySettings | None = None, clock: Clock = wall_clock) -> FastAPI:
    """`clock` decides quiet hours and retry times (tests pass their own)."""
    settings = settings or NotifySettings()

    def utc_clock() -> dt.datetime:
        # SQLite keeps a datetime's wall time without its zone: every time stored or compared is UTC.
        return clock().astimezone(dt.UTC)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.clock = utc_clock
        app.state.public_key = load_public_key(settings.keys())
        oidc.install(app.state)
        engine = make_engine(settings.db_url())
        await create_tables(engine)
        app.state.engine = engine
        app.state.known_unit = oidc.known_units(engine, known_assignments.c.unit_id)
        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=settings.concurrency), follow_redirects=False)
        sender = Sender(engine, Channels(settings, http), settings, utc_clock)
        app.state.sender = sender
        names = UnitNames(http, settings.assignment_url, ttl=settings.unit_names_ttl)
        intake = Intake(engine, settings, utc_clock, on_recorded=sender.wake, names=names)
        app.state.intake = intake
        brokers: list[NatsBroker] = []

        async def activate() -> None:
            broker = notifier_broker(settings, intake)
            brokers.append(broker)
            await broker.connect()
            placed = await place_consumer(broker.config.connection_state.stream, settings)
            await broker.start()
            sender.start()
            log.info("notify.active", consumer=placed)

        async def deactivate() -> None:
            while brokers:
                await brokers.pop().stop()
            await sender.stop()

        lock = lock_file(settings.db_url(), f"{settings.durable}.notify")
        lease = Lease(engine, settings.durable, activate, deactivate, lock, "notify", settings.lease_retry_seconds)
        app.state.lease = lease
        await lease.start()
        duties = BackgroundDuties(app, "notify", settings.nats_url)
        log.info("notify.started", host=settings.host, port=settings.port, active=lease.held)
        try:
            yield
        finally:
            await duties.stop()
            await lease.stop()
            await http.aclose()
            await engine.dispose()
            log.info("notify.stopped")

    app = FastAPI(
        title="policyflow notification service",
        version="1.0",
        description="E-mail and signed webhooks for assignments, returned plans, reminders, escalations and "
        "failed verifications; subscriptions, deliveries and dead letters.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    access_log.install(app, "notify")
    api.install_invalid_handler(app)
    install_liveness(app)
    app.include_router(api.router)
    return app
