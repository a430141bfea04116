"""The read model's JetStream consumer (services.shared.consumer), and the lease that lets only
one process run it (when the service runs several)."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.progress.settings import ProgressSettings
from services.progress.store import READ_MODEL
from services.shared.consumer import Runner
from services.shared.lease import Lease, lock_file
from services.shared.projection import Projection

log = structlog.get_logger()


def consumer(js: Any, engine: AsyncEngine, settings: ProgressSettings) -> Runner:
    return Runner(
        js,
        Projection(engine, READ_MODEL, settings.read_model_durable, settings.read_model_states_kept),
        stream=settings.event_stream,
        batch_size=settings.read_model_batch,
        linger=settings.read_model_linger_ms / 1000,
    )


def lease(engine: AsyncEngine, runner: Runner, settings: ProgressSettings) -> Lease:
    """Only one process folds the stream: competing fetches of one durable would hand each worker
    process (PROGRESS_WORKERS) part of it, each batch then finding gaps."""
    name = settings.read_model_durable
    path = lock_file(settings.db_url(), f"{name}.consumer")
    return Lease(engine, name, runner.start, runner.stop, path, "read_model")
