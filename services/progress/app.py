"""The progress service application: `create_app(settings)`; connections open in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import nats
import structlog
from fastapi import FastAPI

from services.progress import (
    api,
    bulk_reminders,
    bulletin_files,
    calendars,
    dashboard,
    dashboard_outcomes,
    evidence,
    lead,
    oidc_pages,
    outcomes,
    programme_calendar,
    readmodel,
    signin,
    status_routes,
    subscribers,
    workbench,
    workbench_evidence,
)
from services.progress.blobs import blob_store
from services.progress.settings import ProgressSettings
from services.progress.store import READ_MODEL, create_tables
from services.shared import access_log, oidc
from services.shared.auth import load_public_key
from services.shared.background_duties import BackgroundDuties
from services.shared.db import make_engine
from services.shared.nats_urls import close_nats, servers
from services.shared.temporal import connect_with
from services.shared.web import allow_larger_body, install_error_handlers, install_liveness

log = structlog.get_logger()


def create_app(settings: ProgressSettings | None = None) -> FastAPI:
    settings = settings or ProgressSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.public_key = load_public_key(settings.keys())
        oidc.install(app.state)
        engine = make_engine(settings.db_url())
        await create_tables(engine)
        app.state.known_unit = oidc.known_units(engine, READ_MODEL.assignments.c.unit_id)
        app.state.engine = engine
        app.state.blobs = blob_store(
            settings.evidence_path(),
            settings.evidence_s3_bucket,
            settings.evidence_s3_endpoint_url,
            settings.evidence_s3_prefix,
        )
        cache_bytes = int(settings.answer_cache_mib * 2**20)
        app.state.status_reader = readmodel.StatusReader(engine, cache_bytes, settings.read_model_durable)
        app.state.temporal = await connect_with(settings)
        nc = await nats.connect(servers(settings.nats_url), name="policyflow-progress", max_reconnect_attempts=-1)
        app.state.nats = nc
        duties = BackgroundDuties(app, "progress", settings.nats_url)
        runner = subscribers.consumer(nc.jetstream(), engine, settings)
        app.state.read_model_runner = runner
        consumer = subscribers.lease(engine, runner, settings)
        await consumer.start()
        app.state.read_model_consumer = consumer
        app.state.http = httpx.AsyncClient(timeout=10.0)
        app.state.reminder_jobs = {}
        log.info("progress.started", host=settings.host, port=settings.port)
        try:
            yield
        finally:
            await consumer.stop()
            await duties.stop()
            await close_nats(nc)
            await app.state.http.aclose()
            app.state.status_reader.close()
            await engine.dispose()
            log.info("progress.stopped")

    app = FastAPI(
        title="policyflow progress service",
        version="1.0",
        description="Plans, progress reports, reviews and verification as workflow updates; status for supervisors.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    access_log.install(app, "progress")
    install_liveness(app)
    app.include_router(api.router)
    app.include_router(status_routes.router)
    app.include_router(bulk_reminders.router)
    app.include_router(calendars.router)
    app.include_router(evidence.router)
    outcomes.register_checks()
    app.include_router(outcomes.router)
    app.include_router(programme_calendar.router)
    app.include_router(bulletin_files.router)
    allow_larger_body(app, evidence.UPLOAD_PATH, evidence.MAX_UPLOAD_BODY, evidence.TOO_LARGE_BODY)
    allow_larger_body(
        app, workbench_evidence.FORM_PATH, workbench_evidence.MAX_FORM_BODY, workbench_evidence.TOO_LARGE_FORM
    )
    app.include_router(dashboard.router)
    app.include_router(dashboard_outcomes.router)
    app.include_router(lead.router)
    app.include_router(signin.router)
    app.include_router(oidc_pages.router)
    app.include_router(workbench.router)
    return app
