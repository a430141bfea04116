"""The programme's own calendar as a Temporal Schedule (`programme-<id>-calendar`), over HTTP.

Created when a programme is dispatched (or by `PUT /v1/programmes/{id}/schedule`); its action is
the short `ProgrammeCalendarRun` workflow (workflows/programme_calendar.py), which records what
fell due as events. Supervisors show, pause, unpause, trigger and backfill it; the Temporal UI
lists it under Schedules.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.client import ScheduleState as TemporalScheduleState
from temporalio.service import RPCError, RPCStatusCode

from contracts.base import UserRole
from contracts.figures import SHANGHAI
from contracts.programme_calendar import (
    CALENDAR_TICK_WORKFLOW_NAME,
    QUERY_RECORDED,
    BackfillAnswer,
    BackfillRequest,
    CalendarSpan,
    ScheduleAction,
    ScheduleState,
    between,
    bulletin_date,
    calendar_record_workflow_id,
    calendar_schedule_id,
    due_at,
    occurrences,
)
from services.assignment import store
from services.shared.auth import Principal
from services.shared.web import principal, refuse, require_programme, require_role

log = structlog.get_logger()
router = APIRouter()
Caller = Annotated[Principal, Depends(principal)]
TIME_ZONE = "Asia/Shanghai"


def span_of(stored: store.StoredProgramme) -> CalendarSpan:
    """The programme's years: from its start year to the latest horizon in its division."""
    body = stored.body
    horizons = [r.horizon_year for r in body.division.responsibilities]
    return CalendarSpan(
        programme_id=stored.programme_id,
        calendar=body.calendar,
        start_year=body.schedule.start_year,
        end_year=max([body.schedule.start_year, *horizons]),
        evaluation_years=body.schedule.evaluation_years,
    )


def _on(month: int, day: int, hour: int, years: list[int] | None = None, comment: str = "") -> ScheduleCalendarSpec:
    return ScheduleCalendarSpec(
        second=[ScheduleRange(0)], minute=[ScheduleRange(0)], hour=[ScheduleRange(hour)],
        day_of_month=[ScheduleRange(day)], month=[ScheduleRange(month)],
        year=[ScheduleRange(y) for y in years or []], comment=comment,
    )  # fmt: skip


def spec_of(span: CalendarSpan) -> ScheduleSpec:
    """One calendar entry per kind of date, between the first date and the last."""
    cal, dates = span.calendar, occurrences(span)
    calendars = []
    for q in range(1, 5):
        issued = bulletin_date(cal, 2001, q)  # the same month and day every year (at most 45 days on)
        calendars.append(_on(issued.month, issued.day, cal.at_hour, comment=f"督查通报 Q{q} bulletin"))
    snap = dt.date.fromisoformat(f"2001-{cal.snapshot_on}")
    calendars.append(_on(snap.month, snap.day, cal.at_hour, comment="考核得分定格 scores snapshot"))
    if span.evaluation_years:
        opens = dt.date.fromisoformat(f"2001-{cal.evaluation_opens_on}")
        years = span.evaluation_years
        calendars.append(_on(opens.month, opens.day, cal.at_hour, years, comment="五年评估 evaluation opens"))
    return ScheduleSpec(
        calendars=calendars,
        start_at=dates[0].due_at if dates else None,
        end_at=dates[-1].due_at + dt.timedelta(minutes=1) if dates else None,
        time_zone_name=TIME_ZONE,
    )


def schedule_of(span: CalendarSpan, task_queue: str, state: TemporalScheduleState | None = None) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CALENDAR_TICK_WORKFLOW_NAME,
            span,
            id=f"{calendar_schedule_id(span.programme_id)}-run",
            task_queue=task_queue,
            execution_timeout=dt.timedelta(days=1),
        ),
        spec=spec_of(span),
        # A date missed while the servers were down is run when they are back, within a year.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ALL, catchup_window=dt.timedelta(days=365)),
        state=state or TemporalScheduleState(note="方案日程 programme calendar"),
    )


async def ensure_schedule(client: Client, task_queue: str, stored: store.StoredProgramme) -> None:
    """Create the programme's schedule, or bring an existing one to the programme's calendar
    (keeping whether it is paused and why)."""
    span = span_of(stored)
    sid = calendar_schedule_id(stored.programme_id)
    try:
        await client.create_schedule(sid, schedule_of(span, task_queue))
        log.info("schedule.created", programme_id=stored.programme_id, schedule_id=sid)
    except ScheduleAlreadyRunningError:

        def keep_state(given: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule_of(span, task_queue, given.description.schedule.state))

        await client.get_schedule_handle(sid).update(keep_state)


def may_read(caller: Principal, programme_id: str) -> None:
    require_role(caller, UserRole.ADMIN, UserRole.SUPERVISOR, UserRole.AUDITOR)
    require_programme(caller, programme_id)


def may_run(caller: Principal, programme_id: str) -> None:
    """Admins, and supervisors of the whole city (a district's 督查室 supervises its district, not the programme)."""
    require_role(caller, UserRole.ADMIN, UserRole.SUPERVISOR)
    may_read(caller, programme_id)
    if caller.role == UserRole.SUPERVISOR and not caller.city_wide:
        refuse(
            caller,
            programme_id,
            "area",
            "方案日程由管理员或全市督查操作 (the programme's schedule is run by admins and city-wide supervisors)",
        )


# As dependencies, judged before the body: 401 and 403 come before any 422.
async def reader(programme_id: str, caller: Caller) -> Principal:
    may_read(caller, programme_id)
    return caller


async def runner(programme_id: str, caller: Caller) -> Principal:
    may_run(caller, programme_id)
    return caller


async def maker(programme_id: str, caller: Caller) -> Principal:
    require_role(caller, UserRole.ADMIN)
    may_read(caller, programme_id)
    return caller


Reader = Annotated[Principal, Depends(reader)]
Runner = Annotated[Principal, Depends(runner)]
Maker = Annotated[Principal, Depends(maker)]


async def _programme(request: Request, programme_id: str) -> store.StoredProgramme:
    stored = await store.get_programme(request.app.state.engine, programme_id)
    if stored is None:
        raise HTTPException(404, f"没有方案 {programme_id} (no programme {programme_id})")
    return stored


def _unavailable(err: RPCError) -> HTTPException:
    return HTTPException(
        503, f"工作流服务暂时无法处理日程，请稍后再试 (the workflow service did not answer: {err.message})"
    )


async def _handle(request: Request, programme_id: str) -> ScheduleHandle:
    """The schedule's handle, or 409 saying how to create it."""
    client: Client = request.app.state.temporal
    handle = client.get_schedule_handle(calendar_schedule_id(programme_id))
    try:
        await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(
                409,
                f"方案 {programme_id} 尚无日程：下达任务时自动建立，或 PUT /v1/programmes/{programme_id}/schedule "
                f"(programme {programme_id} has no schedule yet: it is made at dispatch, or by PUT on this path)",
            ) from err
        raise _unavailable(err) from err
    return handle


async def state_of(request: Request, programme_id: str) -> ScheduleState:
    stored = await _programme(request, programme_id)
    client: Client = request.app.state.temporal
    sid = calendar_schedule_id(programme_id)
    try:
        desc = await client.get_schedule_handle(sid).describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise _unavailable(err) from err
        words = "尚无日程：下达任务时自动建立 / no schedule yet: it is made at dispatch"
        return ScheduleState(programme_id=programme_id, schedule_id=sid, exists=False, message=words)
    span = span_of(stored)
    action = desc.schedule.action
    if isinstance(action, ScheduleActionStartWorkflow) and action.args:
        try:  # the span the schedule actually runs with (it may predate a change of calendar.yaml)
            [span] = await client.data_converter.decode(list(action.args), [CalendarSpan])
        except Exception:  # noqa: BLE001 - unreadable: show the programme's own span instead
            log.warning("schedule.args_unreadable", schedule_id=sid)
    nexts = [t.astimezone(SHANGHAI) for t in desc.info.next_action_times[:5]]
    recorded: list[str] = []
    with contextlib.suppress(RPCError):  # nothing recorded yet: the record workflow starts with the first date due
        recorded = await client.get_workflow_handle(calendar_record_workflow_id(programme_id)).query(
            QUERY_RECORDED, result_type=list[str], rpc_timeout=dt.timedelta(seconds=5)
        )
    st = desc.schedule.state
    return ScheduleState(
        programme_id=programme_id, schedule_id=sid, exists=True, paused=st.paused, note=st.note or "",
        calendar=span.calendar, start_year=span.start_year, end_year=span.end_year,
        evaluation_years=span.evaluation_years, next_runs=nexts,
        next_due=[o for t in nexts[:3] for o in due_at(span, t)],
        recent_runs=[a.scheduled_at.astimezone(SHANGHAI) for a in desc.info.recent_actions[-5:]],
        recorded=recorded, message="已暂停 / paused" if st.paused else "运行中 / running",
    )  # fmt: skip


@router.get("/v1/programmes/{programme_id}/schedule", response_model=ScheduleState, tags=["schedule"])
async def show_schedule(request: Request, _caller: Reader, programme_id: str) -> ScheduleState:
    """The programme's calendar schedule: paused or running, its next dates and what falls due."""
    return await state_of(request, programme_id)


@router.put("/v1/programmes/{programme_id}/schedule", response_model=ScheduleState, tags=["schedule"])
async def put_schedule(request: Request, _caller: Maker, programme_id: str) -> ScheduleState:
    """Create the schedule from the programme's calendar (or bring it up to date); a paused one stays paused."""
    stored = await _programme(request, programme_id)
    try:
        await ensure_schedule(request.app.state.temporal, request.app.state.settings.task_queue, stored)
    except RPCError as err:
        raise _unavailable(err) from err
    return await state_of(request, programme_id)


@router.post("/v1/programmes/{programme_id}/schedule/pause", response_model=ScheduleState, tags=["schedule"])
async def pause_schedule(request: Request, caller: Runner, programme_id: str, body: ScheduleAction) -> ScheduleState:
    """Pause it: no date fires until unpaused (a date passed meanwhile is not run later; backfill it)."""
    handle = await _handle(request, programme_id)
    try:
        await handle.pause(note=body.reason or f"{caller.sub} 暂停 / paused by {caller.sub}")
    except RPCError as err:
        raise _unavailable(err) from err
    log.info("schedule.paused", programme_id=programme_id, sub=caller.sub)
    return await state_of(request, programme_id)


@router.post("/v1/programmes/{programme_id}/schedule/unpause", response_model=ScheduleState, tags=["schedule"])
async def unpause_schedule(request: Request, caller: Runner, programme_id: str, body: ScheduleAction) -> ScheduleState:
    handle = await _handle(request, programme_id)
    try:
        await handle.unpause(note=body.reason or f"{caller.sub} 恢复 / unpaused by {caller.sub}")
    except RPCError as err:
        raise _unavailable(err) from err
    log.info("schedule.unpaused", programme_id=programme_id, sub=caller.sub)
    return await state_of(request, programme_id)


@router.post("/v1/programmes/{programme_id}/schedule/trigger", response_model=BackfillAnswer, tags=["schedule"])
async def trigger_schedule(request: Request, caller: Runner, programme_id: str) -> BackfillAnswer:
    """Run it now: it records the latest dates due by now (those recorded already are not recorded again)."""
    stored = await _programme(request, programme_id)
    handle = await _handle(request, programme_id)
    try:
        await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    except RPCError as err:
        raise _unavailable(err) from err
    now = dt.datetime.now(SHANGHAI)
    log.info("schedule.triggered", programme_id=programme_id, sub=caller.sub)
    return BackfillAnswer(programme_id=programme_id, from_date=now.date(), to_date=now.date(),
                          due=due_at(span_of(stored), now))  # fmt: skip


@router.post("/v1/programmes/{programme_id}/schedule/backfill", response_model=BackfillAnswer, tags=["schedule"])
async def backfill_schedule(
    request: Request,
    _caller: Runner,
    programme_id: str,
    body: BackfillRequest,
) -> BackfillAnswer:
    """Run it for every date from `from_date` to `to_date` (inclusive, China time), as if it had fired then."""
    if body.to_date < body.from_date:
        raise HTTPException(422, f"结束日期 {body.to_date} 早于开始日期 {body.from_date} (to is before from)")
    stored = await _programme(request, programme_id)
    handle = await _handle(request, programme_id)
    start = dt.datetime.combine(body.from_date, dt.time(), tzinfo=SHANGHAI)
    end = dt.datetime.combine(body.to_date + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI)
    try:
        await handle.backfill(ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.ALLOW_ALL))
    except RPCError as err:
        raise _unavailable(err) from err
    log.info("schedule.backfilled", programme_id=programme_id, start=str(body.from_date), end=str(body.to_date))
    return BackfillAnswer(programme_id=programme_id, from_date=body.from_date, to_date=body.to_date,
                          due=between(span_of(stored), start, end - dt.timedelta(microseconds=1)))  # fmt: skip
