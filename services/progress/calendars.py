"""The working calendar as published data (放假安排): publish a year, read what is in force.

`PUT /v1/calendars/{year}` hands the calendar to that year's WorkingCalendarWorkflow (started if
need be), which records it as an event and signals every running assignment; the answer is 202
and `GET` on the same path reports how far that got. Supervisors publish (the admin role when
the identity issue brings it).
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.service import RPCError

from contracts.base import UserRole
from contracts.working_calendar import (
    CALENDAR_WORKFLOW_NAME,
    SIGNAL_PUBLISH_CALENDAR,
    CalendarPublication,
    CalendarStatus,
    PublishedCalendar,
    calendar_workflow_id,
)
from services.shared import calendars
from services.shared.auth import HUMAN_ROLES, Principal
from services.shared.web import HasRole, principal, require_role
from workflows.calendar_workflow import CalendarInput

log = structlog.get_logger()
router = APIRouter()
Year = Annotated[int, Path(ge=2000, le=2100)]
PROVISIONAL = (
    "未公布：使用 holidays 软件包中的放假安排（暂定） / not published: the holidays package's calendar is used, "
    "provisionally"
)


async def calendar_status(temporal: Client, year: int, timeout: float = 10.0) -> CalendarStatus:
    """What is in force for `year`: the published calendar and its publication's progress, or none."""
    try:
        found = await calendars.calendar_state(temporal, year, timeout)
    except RPCError as err:
        raise HTTPException(503, f"the calendar of {year} cannot be read now: {err.message}") from err
    except TimeoutError as err:
        raise HTTPException(503, f"the calendar of {year} cannot be read now: no answer in time") from err
    if found is None:
        return CalendarStatus(year=year, published=False, message=PROVISIONAL)
    words = {
        "queued": "等待处理 / queued",
        "signalling": f"正在通知运行中的任务，已通知 {found.signalled} 个 / telling the running assignments",
        "done": f"已生效，已通知 {found.signalled} 个运行中的任务 / in force",
    }
    return found.model_copy(update={"message": words.get(found.state, PROVISIONAL)})


async def provisional_note(temporal: Client, year: int, timeout: float) -> str | None:
    """The dashboard's words on `year` (next year) while its calendar is not published; None once it is."""
    try:
        found = await calendars.calendar_state(temporal, year, timeout)
    except (RPCError, TimeoutError):
        return (
            f"暂时无法确认 {year} 年放假安排是否已公布（工作流服务无响应）；"
            "未公布时该年期限按 holidays 软件包计算（暂定）。"
        )
    if found is not None and found.calendar is not None:
        return None
    return (
        f"{year} 年放假安排尚未公布：该年的期限暂按 holidays 软件包中的放假安排计算（暂定），"
        f"公布后（policyflow calendar publish {year} 文件）各任务的期限将自动重新计算。"
    )


@router.put(
    "/v1/calendars/{year}",
    status_code=202,
    response_model=CalendarStatus,
    tags=["calendar"],
    summary="放假安排 publish a year's working calendar",
)
async def publish_calendar(
    request: Request,
    year: Year,
    body: PublishedCalendar,
    caller: Annotated[Principal, Depends(HasRole(UserRole.ADMIN))],
) -> JSONResponse:
    """Record the year's holidays and make-up working days (again: it replaces the one before, audited);
    every running assignment recomputes its open deadlines at once. 202: `GET` follows the progress. Admins."""
    if body.year != year:
        raise HTTPException(422, f"the body is the calendar of {body.year}, the path says {year}")
    temporal: Client = request.app.state.temporal
    publication = CalendarPublication(calendar=body, actor=caller.actor())
    try:
        await temporal.start_workflow(
            CALENDAR_WORKFLOW_NAME,
            CalendarInput(year=year),
            id=calendar_workflow_id(year),
            task_queue=request.app.state.settings.task_queue,
            start_signal=SIGNAL_PUBLISH_CALENDAR,
            start_signal_args=[publication],
        )
    except RPCError as err:
        raise HTTPException(503, f"the calendar could not be handed to the workflow service: {err.message}") from err
    log.info("calendar.published", year=year, source=body.source, sub=caller.sub)
    status = CalendarStatus(year=year, published=True, calendar=body, state="queued", message="等待处理 / queued")
    return JSONResponse(status.model_dump(mode="json"), 202, headers={"Location": f"/v1/calendars/{year}"})


@router.get("/v1/calendars/{year}", response_model=CalendarStatus, tags=["calendar"])
async def show_calendar(
    request: Request, year: Year, caller: Annotated[Principal, Depends(principal)]
) -> CalendarStatus:
    """The year's published calendar and its publication's progress, or that none is published."""
    require_role(caller, *HUMAN_ROLES)
    return await calendar_status(request.app.state.temporal, year)
