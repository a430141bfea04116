"""Assignment service HTTP API: programme import, dispatch, the unit registry and each unit's inbox."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError

from contracts.api import (
    AssignmentSummary,
    DispatchResult,
    DispatchStatus,
    Page,
    ProgrammeImport,
    ProgrammeOut,
    UnitOut,
)
from contracts.base import Stage, UserRole
from contracts.catalog import UnitKind
from contracts.events import Deadline, ProgrammeImported
from contracts.indicators import ProgrammeOutcomes
from contracts.programme_calendar import calendar_schedule_id
from services.assignment import dispatch as dispatching
from services.assignment import schedules, store
from services.shared import access
from services.shared.auth import Principal
from services.shared.web import HasRole, principal, refuse_hidden_in_names, require_programme, require_unit

log = structlog.get_logger()
router = APIRouter()
Caller = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(HasRole(UserRole.ADMIN))]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]  # a database integer


def check_references(body: ProgrammeImport) -> None:
    """The division must name tasks of this programme and units of the registry, each pair once."""
    tasks = {t.no for t in body.programme.tasks()}
    unit_ids = {u.unit_id for u in body.units}
    seen: set[tuple[int, str]] = set()
    for i, r in enumerate(body.division.responsibilities):
        where = f"division.responsibilities.{i}"
        if r.task_no not in tasks:
            raise HTTPException(422, f"{where}.task_no: task {r.task_no} is not in the programme")
        if r.unit_id not in unit_ids:
            raise HTTPException(422, f"{where}.unit_id: unit {r.unit_id} is not in units")
        if r.horizon_year < body.schedule.start_year:
            raise HTTPException(
                422,
                f"{where}.horizon_year: {r.horizon_year} is before the schedule's start year "
                f"{body.schedule.start_year}; the assignment would have no year to supervise",
            )
        if (r.task_no, r.unit_id) in seen:
            raise HTTPException(422, f"{where}: unit {r.unit_id} appears twice for task {r.task_no}")
        seen.add((r.task_no, r.unit_id))
    for i, ind in enumerate(body.outcomes.indicators):
        unknown = sorted(set(ind.tasks) - tasks)
        if unknown:
            raise HTTPException(
                422,
                f"outcomes.indicators.{i}.tasks: 指标 {ind.id} 所列任务 {unknown} 不在本方案中 (not in the programme)",
            )


def programme_out(stored: store.StoredProgramme, imported: bool) -> ProgrammeOut:
    b = stored.body
    return ProgrammeOut(
        programme_id=b.programme_id,
        document_no=b.programme.document_no,
        title=b.programme.title,
        issued_on=b.programme.issued_on,
        task_count=len(b.programme.tasks()),
        responsibility_count=len(b.division.responsibilities),
        example_division=b.division.example,
        schedule=b.schedule,
        programme=b.programme,
        imported=imported,
    )


async def _record(request: Request, stored: store.StoredProgramme, caller: Principal) -> None:
    """ProgrammeImported is the programme workflow's to record and publish (the stored fact, so a
    repeated import asks for the very same fact)."""
    fact = ProgrammeImported.model_validate_json(stored.event)
    app = request.app
    await dispatching.record_import(
        app.state.temporal, app.state.settings.task_queue, stored.programme_id, fact, caller.actor()
    )
    await store.mark_published(app.state.engine, stored.programme_id)
    log.info("programme.recorded", programme_id=stored.programme_id)


@router.post("/v1/programmes", response_model=ProgrammeOut, tags=["programmes"])
async def import_programme(request: Request, caller: Admin, body: ProgrammeImport) -> ProgrammeOut:
    """Admins (operators): a programme, its units and its division of work."""
    require_programme(caller, body.programme_id)
    refuse_hidden_in_names(body.model_dump(mode="json", include={"programme", "units"}))
    check_references(body)
    engine = request.app.state.engine
    sha = store.content_sha256(body)
    stored = await store.get_programme(engine, body.programme_id)
    imported = False
    if stored is None:
        fact = ProgrammeImported(
            document_no=body.programme.document_no,
            title=body.programme.title,
            task_count=len(body.programme.tasks()),
            responsibility_count=len(body.division.responsibilities),
            content_sha256=sha,
            outcomes=body.outcomes if body.outcomes != ProgrammeOutcomes() else None,
        )
        stored = await store.insert_programme(engine, body, sha, fact.model_dump_json(), caller.sub)
        imported = stored is not None
        stored = stored or await store.get_programme(engine, body.programme_id)  # lost a race: theirs stands
        assert stored is not None
    if stored.content_sha256 != sha:
        raise HTTPException(
            409,
            f"programme {body.programme_id} was already imported with different content; a changed division "
            f"is a revision: POST /v1/programmes/{body.programme_id}/revisions (dry run, then apply), which "
            "`policyflow programme import DIR` does, or import the new version under a new programme_id",
        )
    if not stored.event_published:
        try:
            await _record(request, stored, caller)
        except (RPCError, TimeoutError) as exc:
            raise HTTPException(
                503, f"programme stored, but the workflow service did not record its import ({exc}); import it again"
            ) from exc
    log.info("programme.import", programme_id=body.programme_id, imported=imported, sub=caller.sub)
    return programme_out(stored, imported)


@router.get("/v1/programmes/{programme_id}", response_model=ProgrammeOut, tags=["programmes"])
async def get_programme(request: Request, caller: Caller, programme_id: str) -> ProgrammeOut:
    require_programme(caller, programme_id)
    stored = await store.get_programme(request.app.state.engine, programme_id)
    if stored is None:
        raise HTTPException(404, f"no programme {programme_id}")
    return programme_out(stored, imported=True)


def dispatch_message(out: dispatching.DispatchOutcome) -> str:
    if out.failed:
        first_id, first_error = out.failed[0]
        return (
            f"started {out.started}, already running {out.skipped}, failed {len(out.failed)} "
            f"(first: {first_id}: {first_error}); dispatch again to start the rest"
        )
    if out.started == 0:
        return f"all {out.total} assignments were already dispatched; nothing new was started"
    if out.skipped:
        return f"started {out.started} assignments; {out.skipped} were already dispatched"
    return f"started {out.started} assignments"


async def start_dispatch(request: Request, caller: Principal, programme_id: str) -> dispatching.DispatchJob:
    """Start this programme's dispatch in the background, or join the one already running (admins: it
    belongs to the import)."""
    require_programme(caller, programme_id)
    app = request.app
    jobs: dispatching.DispatchJobs = app.state.dispatch_jobs
    running = jobs.get(programme_id)
    if running is not None and running.running:
        return running
    stored = await store.get_programme(app.state.engine, programme_id)
    if stored is None:
        raise HTTPException(404, f"no programme {programme_id}")
    items = dispatching.specs(
        await store.programme_responsibilities(app.state.engine, programme_id), stored.body.schedule
    )

    async def run(out: dispatching.DispatchOutcome) -> dispatching.DispatchOutcome:
        await dispatching.dispatch(
            app.state.temporal,
            app.state.settings.task_queue,
            items,
            created_by=caller.actor(),
            concurrency=app.state.settings.dispatch_concurrency,
            search_attributes=app.state.settings.search_attributes,
            out=out,
        )
        if not out.failed:
            try:
                await schedules.ensure_schedule(app.state.temporal, app.state.settings.task_queue, stored)
            except RPCError as err:  # the assignments are started; dispatching again makes the schedule
                out.failed.append((calendar_schedule_id(programme_id), err.message))
        if not out.failed:
            await store.mark_dispatched(app.state.engine, programme_id)
        log.info(
            "programme.dispatch",
            programme_id=programme_id,
            started=out.started,
            skipped=out.skipped,
            failed=len(out.failed),
            sub=caller.sub,
        )
        return out

    return jobs.start(programme_id, len(items), run)


def job_status(job: dispatching.DispatchJob, dispatched_at: dt.datetime | None) -> DispatchStatus:
    out = job.outcome
    if job.running:
        state, message = "running", f"{out.total} of {job.total} assignments handled so far"
    elif job.task.cancelled() or job.task.exception() is not None:
        state, message = "failed", "the dispatch was interrupted; dispatch again to start the rest"
    else:
        state, message = ("failed" if out.failed else "done"), dispatch_message(out)
    return DispatchStatus(
        programme_id=job.programme_id,
        state=state,
        total=job.total,
        started=out.started,
        skipped=out.skipped,
        failed=len(out.failed),
        message=message,
        dispatched_at=dispatched_at,
    )


DISPATCH_DOC = """Start one assignment per responsibility; repeating it starts nothing new.

By default the request waits until every start has returned (200). With `wait=false` it answers
202 at once with the dispatch's status, and `GET` on the same path reports progress. A second
request while a dispatch runs joins it instead of starting another."""


@router.post(
    "/v1/programmes/{programme_id}/dispatch",
    response_model=DispatchResult,
    tags=["programmes"],
    description=DISPATCH_DOC,
    responses={202: {"model": DispatchStatus, "description": "wait=false: started (or already running)"}},
)
async def dispatch(
    request: Request,
    caller: Admin,
    programme_id: str,
    wait: Annotated[bool, Query(description="false: answer 202 at once and run in the background")] = True,
) -> DispatchResult | JSONResponse:
    job = await start_dispatch(request, caller, programme_id)
    if not wait:
        status = job_status(job, None).model_dump(mode="json")
        return JSONResponse(status, 202, headers={"Location": f"/v1/programmes/{programme_id}/dispatch"})
    # A client that hangs up does not stop the dispatch; it goes on in the background.
    out = await asyncio.shield(job.task)
    if out.failed:
        raise HTTPException(503, dispatch_message(out))
    return DispatchResult(
        programme_id=programme_id,
        started=out.started,
        skipped=out.skipped,
        total=out.total,
        message=dispatch_message(out),
    )


@router.get("/v1/programmes/{programme_id}/dispatch", response_model=DispatchStatus, tags=["programmes"])
async def dispatch_status(request: Request, caller: Caller, programme_id: str) -> DispatchStatus:
    """The programme's dispatch: running (with counts so far), done, failed, or not started."""
    require_programme(caller, programme_id)
    stored = await store.get_programme(request.app.state.engine, programme_id)
    if stored is None:
        raise HTTPException(404, f"no programme {programme_id}")
    job = request.app.state.dispatch_jobs.get(programme_id)
    if job is not None:
        return job_status(job, stored.dispatched_at)
    total = len(stored.body.division.responsibilities)
    if stored.dispatched_at is None:
        return DispatchStatus(
            programme_id=programme_id,
            state="not_started",
            total=total,
            started=None,
            skipped=None,
            failed=None,
            message="not dispatched yet, or a dispatch was interrupted by a restart: dispatch again",
        )
    return DispatchStatus(
        programme_id=programme_id,
        state="done",
        total=total,
        started=None,
        skipped=None,
        failed=None,
        message=f"all {total} assignments were dispatched",
        dispatched_at=stored.dispatched_at,
    )


@router.get("/v1/units", response_model=Page[UnitOut], tags=["units"])
async def list_units(
    request: Request,
    kind: UnitKind | None = None,
    programme_id: Annotated[
        str | None, Query(max_length=64, description="only the units taking part in this programme")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[UnitOut]:
    """The unit registry (ids, names, kinds), readable without a token: it is public information
    (the notifier names units from it). Units are organisations shared by every programme; with
    `programme_id`, those that take part in it."""
    items, total = await store.list_units(request.app.state.engine, kind, limit, offset, programme_id)
    return Page[UnitOut](items=[UnitOut(unit_id=u.unit_id, name=u.name, kind=u.kind) for u in items], total=total)


def _summary(row: dict[str, Any]) -> AssignmentSummary:
    nxt = row.pop("next_deadline")
    return AssignmentSummary(**row, next_deadline=Deadline.model_validate_json(nxt) if nxt else None)


@router.get("/v1/units/{unit_id}/assignments", response_model=Page[AssignmentSummary], tags=["units"])
async def unit_inbox(
    request: Request, caller: Caller, unit_id: str, stage: Stage | None = None, limit: Limit = 50, offset: Offset = 0
) -> Page[AssignmentSummary]:
    """A unit's assignments: the unit itself, and supervisors and verifiers of an area that holds it
    (a task supervisor sees that task's), auditors; within the token's programmes."""
    engine = request.app.state.engine
    if not await store.unit_exists(engine, unit_id):
        raise HTTPException(404, f"no unit {unit_id}")
    mine = access.area(caller)
    if not mine.tasks:
        require_unit(caller, unit_id)
    rows, total = await store.inbox(engine, unit_id, stage.value if stage else None, limit, offset, mine)
    return Page[AssignmentSummary](items=[_summary(r) for r in rows], total=total)


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "service": "assignment"}
