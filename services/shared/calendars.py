"""Reading the published working calendars (放假安排) from their year's WorkingCalendarWorkflow.

The progress service answers `GET /v1/calendars/{year}` with it; the assignment service reads the
years a dispatch touches, so that a new assignment computes its first deadlines on the published
calendar rather than on the `holidays` package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.working_calendar import QUERY_CALENDAR, CalendarStatus, PublishedCalendar, calendar_workflow_id


async def calendar_state(temporal: Client, year: int, timeout: float = 10.0) -> CalendarStatus | None:
    """The year's calendar workflow's state; None when the year was never published.

    Raises RPCError (Temporal unreachable or refusing) and TimeoutError (no answer in `timeout` s).
    """
    handle = temporal.get_workflow_handle(calendar_workflow_id(year))
    try:
        found = await asyncio.wait_for(handle.query(QUERY_CALENDAR, result_type=CalendarStatus), timeout)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return found if isinstance(found, CalendarStatus) else CalendarStatus.model_validate(found)


async def published_calendars(temporal: Client, years: Iterable[int], timeout: float = 10.0) -> list[PublishedCalendar]:
    """The calendars recorded as published for `years`, by year (years never published are left out)."""
    wanted = sorted({y for y in years if 2000 <= y <= 2100})
    found = await asyncio.gather(*(calendar_state(temporal, y, timeout) for y in wanted))
    return [s.calendar for s in found if s is not None and s.calendar is not None]
