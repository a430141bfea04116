"""Wiring: `create_app(settings)` builds the FastAPI app; its lifespan opens the database,
loads the keys and starts the ledger consumer. Nothing is built at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.audit import outcomes
from services.audit.api import Audit, router
from services.audit.checkpoints import Checkpointer, Signer
from services.audit.ingest import Ingestor
from services.audit.settings import AuditSettings
from services.audit.store import create_tables, ledger
from services.audit.subscribers import LedgerConsumer
from services.audit.witnesses import WitnessClient
from services.shared import access_log, oidc
from services.shared.auth import load_public_key
from services.shared.background_duties import BackgroundDuties
from services.shared.db import make_engine
from services.shared.signed_note import parse_vkey
from services.shared.web import install_error_handlers, install_liveness


def create_app(settings: AuditSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or AuditSettings()
        engine = make_engine(s.database_url)
        await create_tables(engine)
        app.state.public_key = load_public_key(s.keys)
        oidc.install(app.state)
        app.state.known_unit = oidc.known_units(engine, ledger.c.unit_id)
        signer = Signer(s.keys, s.origin)
        checkpointer = Checkpointer(engine, signer, s.checkpoint_every, s.checkpoint_interval)
        keys = [parse_vkey(k) for k in s.witness_keys.split(",") if k.strip()]
        witnesses = WitnessClient(engine, list(zip(s.witnesses, keys, strict=True)))
        checkpointer.on_made = witnesses.checkpoint_made
        consumer = LedgerConsumer(Ingestor(engine, s.durable), checkpointer, s.nats_url, s.stream, s.batch_size)
        consumer.start()
        duties = BackgroundDuties(app, "audit", s.nats_url)
        witnesses.start()
        app.state.audit = Audit(engine, checkpointer, consumer, witnesses.witnesses)
        try:
            yield
        finally:
            await duties.stop()
            await consumer.stop()
            await checkpointer.stop()
            await witnesses.stop()
            await engine.dispose()

    app = FastAPI(
        title="policyflow audit",
        description="Hash-chained audit ledger of every policyflow event: replay, verify, proofs, export.",
        version="1",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    access_log.install(app, "audit")
    install_liveness(app)
    app.include_router(router)
    app.include_router(outcomes.router)
    return app
