"""Wiring: `create_app(settings)` builds the witness's FastAPI app; its lifespan opens its database
and loads (on first start: makes) its key. Nothing is built at import time. The witness reads no
event stream, so it has no subscribers: logs come to it over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from services.shared.db import make_engine
from services.shared.web import install_error_handlers, install_liveness
from services.witness.api import Witness, router
from services.witness.cosigner import Cosigner
from services.witness.settings import WitnessSettings
from services.witness.store import create_tables

log = structlog.get_logger("witness")


def create_app(settings: WitnessSettings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or WitnessSettings()
        engine = make_engine(s.database_url)
        await create_tables(engine)
        trusted = s.trusted_logs()
        app.state.witness = Witness(engine, Cosigner(s.keys, s.name), trusted)
        if not trusted:
            log.warning("witness.no_logs", hint="set WITNESS_LOG_KEYS to the logs' verifier keys")
        log.info("witness.started", name=s.name, verifier_key=app.state.witness.cosigner.vkey, logs=sorted(trusted))
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="policyflow witness",
        description="Cosigns a log's checkpoints after checking that each extends the last one it cosigned "
        "(C2SP tlog-witness, tlog-cosignature).",
        version="1",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_liveness(app)
    app.include_router(router)
    return app
