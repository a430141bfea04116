"""The assignment service application: `create_app(settings)`; connections open in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from faststream.nats import NatsBroker

from services.assignment import api, subscribers
from services.assignment.settings import AssignmentSettings
from services.assignment.store import create_tables
from services.shared.auth import load_public_key
from services.shared.db import make_engine
from services.shared.temporal import connect
from services.shared.web import install_error_handlers

log = structlog.get_logger()


def create_app(settings: AssignmentSettings | None = None) -> FastAPI:
    settings = settings or AssignmentSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.public_key = load_public_key(settings.keys())
        engine = make_engine(settings.db_url())
        await create_tables(engine)
        app.state.engine = engine
        app.state.temporal = await connect(settings.temporal_address, settings.temporal_namespace)
        broker = NatsBroker(settings.nats_url, logger=logging.getLogger("faststream"), log_level=logging.DEBUG)
        subscribers.register(broker, engine, settings)
        await broker.start()
        app.state.broker = broker
        # The broker's JetStream context, for publishing ProgrammeImported on the same connection.
        app.state.js = lambda: broker.config.connection_state.stream
        log.info("assignment.started", host=settings.host, port=settings.port)
        try:
            yield
        finally:
            await broker.stop()
            await engine.dispose()
            log.info("assignment.stopped")

    app = FastAPI(
        title="policyflow assignment service",
        version="1.0",
        description="Programme import, dispatch of one lifecycle per responsibility, the unit registry and inboxes.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(api.router)
    return app
