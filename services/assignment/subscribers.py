"""The inbox projection's JetStream consumer (durable `assignment-inbox`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.assignment.settings import AssignmentSettings
from services.assignment.store import INBOX
from services.shared.consumer import Runner
from services.shared.projection import Projection


def consumer(js: Any, engine: AsyncEngine, settings: AssignmentSettings) -> Runner:
    return Runner(
        js,
        Projection(engine, INBOX, settings.inbox_durable),
        stream=settings.event_stream,
        batch_size=settings.inbox_batch,
        linger=settings.inbox_linger_ms / 1000,
    )
