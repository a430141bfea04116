"""The read model's JetStream consumer: a durable pull consumer, batches folded per transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.subjects import EVENT_SUBJECTS
from services.progress.settings import ProgressSettings
from services.progress.store import READ_MODEL
from services.shared import projection


def consumer(js: Any, engine: AsyncEngine, settings: ProgressSettings) -> projection.Consumer:
    return projection.Consumer(
        js,
        engine,
        READ_MODEL,
        durable=settings.read_model_durable,
        stream=settings.event_stream,
        subject=EVENT_SUBJECTS,
        batch_size=settings.read_model_batch,
    )
