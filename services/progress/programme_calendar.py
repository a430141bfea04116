"""What a programme's own calendar has recorded (bulletins issued, scores snapshotted, evaluations
opened), from the read model: `GET /v1/programmes/{programme_id}/calendar`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.ids import PROGRAMME_ID_PATTERN
from contracts.programme_calendar import ProgrammeCalendarView, RecordedDate, calendar_view
from services.progress.store import READ_MODEL
from services.shared.auth import Principal
from services.shared.web import principal, require_programme

router = APIRouter()
assert READ_MODEL.calendar is not None
CAL = READ_MODEL.calendar
ProgrammeId = Annotated[str, Path(max_length=64, pattern=PROGRAMME_ID_PATTERN)]


@router.get(
    "/v1/programmes/{programme_id}/calendar",
    response_model=ProgrammeCalendarView,
    tags=["schedule"],
)
async def programme_calendar(
    request: Request, programme_id: ProgrammeId, caller: Annotated[Principal, Depends(principal)]
) -> ProgrammeCalendarView:
    """The latest bulletin period issued, the latest year snapshotted, the evaluations open, and every date
    recorded so far (none yet: empty lists, not 404; the schedule records them as they fall due)."""
    require_programme(caller, programme_id)
    return await read_calendar(request.app.state.engine, programme_id)


async def read_calendar(engine: AsyncEngine, programme_id: str) -> ProgrammeCalendarView:
    """The programme's calendar as the read model holds it (also the workbench's: is an evaluation open?)."""
    query = select(CAL).where(CAL.c.programme_id == programme_id).order_by(CAL.c.due_at, CAL.c.key)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    dates = [RecordedDate.model_validate({k: _aware(v) for k, v in r.items() if k != "programme_id"}) for r in rows]
    return calendar_view(programme_id, dates)


def _aware(value: object) -> object:
    """SQLite hands back the stored UTC times without their zone; the figures compare them with aware ones."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
