"""The assignment service application: `create_app(settings)`; connections open in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
import structlog
from fastapi import FastAPI

from services.assignment import api, changes, schedules, subscribers
from services.assignment.dispatch import DispatchJobs
from services.assignment.settings import AssignmentSettings
from services.assignment.store import create_tables, units
from services.shared import access_log, oidc
from services.shared.auth import load_public_key
from services.shared.background_duties import BackgroundDuties
from services.shared.db import make_engine
from services.shared.nats_urls import close_nats, servers
from services.shared.streams import ensure_event_stream
from services.shared.temporal import connect_with
from services.shared.web import install_error_handlers, install_liveness

log = structlog.get_logger()


def create_app(settings: AssignmentSettings | None = None) -> FastAPI:
    settings = settings or AssignmentSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.public_key = load_public_key(settings.keys())
        oidc.install(app.state)
        engine = make_engine(settings.db_url())
        await create_tables(engine)
        app.state.known_unit = oidc.known_units(engine, units.c.unit_id)  # a provider's token names a unit
        app.state.engine = engine
        app.state.temporal = await connect_with(settings)
        nc = await nats.connect(servers(settings.nats_url), name="policyflow-assignment", max_reconnect_attempts=-1)
        app.state.nats = nc
        duties = BackgroundDuties(app, "assignment", settings.nats_url, settings.nats_replicas)
        # Its inbox reads the stream: create it if the worker has not yet.
        await ensure_event_stream(nc.jetstream(), settings.nats_replicas)
        consumer = subscribers.consumer(nc.jetstream(), engine, settings)
        await consumer.start()
        app.state.dispatch_jobs = DispatchJobs()
        log.info("assignment.started", host=settings.host, port=settings.port)
        try:
            yield
        finally:
            await app.state.dispatch_jobs.close()
            await consumer.stop()
            await duties.stop()
            await close_nats(nc)
            await engine.dispose()
            log.info("assignment.stopped")

    app = FastAPI(
        title="policyflow assignment service",
        version="1.0",
        description="Programme import, dispatch of one lifecycle per responsibility, the unit registry and inboxes.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    access_log.install(app, "assignment")
    install_liveness(app)
    app.include_router(api.router)
    app.include_router(changes.router)
    app.include_router(schedules.router)
    return app
