"""The inbox projection's JetStream consumer (durable `assignment-inbox`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.subjects import EVENT_SUBJECTS
from services.assignment.settings import AssignmentSettings
from services.assignment.store import INBOX
from services.shared import projection


def consumer(js: Any, engine: AsyncEngine, settings: AssignmentSettings) -> projection.Consumer:
    return projection.Consumer(
        js,
        engine,
        INBOX,
        durable=settings.inbox_durable,
        stream=settings.event_stream,
        subject=EVENT_SUBJECTS,
        batch_size=settings.inbox_batch,
        linger=settings.inbox_linger_ms / 1000,
    )
