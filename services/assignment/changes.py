"""Changes to a division while it runs, over HTTP (supervisors): reassignment (转办), a unit added
to a task, and a revised division (dry run, then apply with the dry run's version).

The assignment service keeps the division, so it makes these changes: its rows first or the
closing workflow update first, in the order that lets a repeated request finish what an
interrupted one began; then the workflows follow by update (`workflows.changes`).
"""

from __future__ import annotations

import asyncio
import difflib
import json
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from contracts.api import AddUnitBody, ProgrammeImport, ReassignBody, ReassignResult, RevisionAnswer, RevisionRequest
from contracts.base import Role, UserRole
from contracts.catalog import Responsibility, Unit, UnitKind
from contracts.command_table import BY_NAME
from contracts.commands import UPDATE_REASSIGN, ReassignAssignment
from contracts.division_facts import ProgrammeRevised
from contracts.events import ProgrammeImported
from services.assignment import change_store, revision_jobs, store
from services.assignment import dispatch as dispatching
from services.assignment.api import check_references
from services.assignment.revision import Plan, next_assignment_id, plan, version
from services.shared import access
from services.shared.auth import Principal
from services.shared.temporal import query_status, run_update
from services.shared.web import HasRole, enforce, principal, require_programme

log = structlog.get_logger()
router = APIRouter()
Caller = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(HasRole(UserRole.ADMIN))]
Supervisor = Annotated[Principal, Depends(HasRole(UserRole.SUPERVISOR))]


async def known_unit(request: Request, unit_id: str, field: str) -> Unit:
    """A unit of the registry, or 422 naming the closest ids."""
    units = store.units
    async with request.app.state.engine.connect() as conn:
        row = (await conn.execute(select(units).where(units.c.unit_id == unit_id))).first()
        if row is None:
            ids = [r[0] for r in await conn.execute(select(units.c.unit_id))]
    if row is None:
        near = difflib.get_close_matches(unit_id, ids, n=2)
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise HTTPException(422, f"{field}: unknown unit '{unit_id}'{hint}; `policyflow units` lists the registry")
    return Unit(unit_id=row.unit_id, name=row.name, kind=UnitKind(row.kind), aliases=json.loads(row.aliases))


# ---- reassignment ----------------------------------------------------------------------------------


@router.post("/v1/assignments/{assignment_id}/reassign", response_model=ReassignResult, tags=["changes"],
             summary="转办 move an assignment to another unit")  # fmt: skip
async def reassign(request: Request, caller: Supervisor, assignment_id: str, body: ReassignBody) -> ReassignResult:
    """Supervisors. The assignment is closed with the reason and a pointer to a new assignment (a new
    id) of `to_unit`, which starts accepted and with this year's approved plan when the old one had
    them and the supervisor carries them. Its history stays with the old id; both details link the
    other. A repeated request after an interruption finishes the same reassignment."""
    app = request.app
    engine = app.state.engine
    old = await change_store.responsibility(engine, assignment_id)
    if old is None:
        raise HTTPException(404, f"no assignment {assignment_id}")
    record = access.Record(old["programme_id"], old["task_no"], old["unit_id"])
    enforce(caller, access.decide(caller, record, BY_NAME[UPDATE_REASSIGN].senders), assignment_id)
    if old["closed_at"] is not None:
        after = f"; it continues as {old['successor_id']}" if old["successor_id"] else ""
        raise HTTPException(409, f"assignment {assignment_id} is closed ({old['closed_reason']}){after}")
    await known_unit(request, body.to_unit, "to_unit")
    # The new assignment must be one the caller could act on too: a district's 督查室 moves work
    # between its own units, a task's supervisor within its task.
    target = access.Record(old["programme_id"], old["task_no"], body.to_unit)
    enforce(caller, access.decide(caller, target, BY_NAME[UPDATE_REASSIGN].senders), body.to_unit)
    for other in await change_store.in_force_on_task(engine, old["programme_id"], old["task_no"]):
        if other["unit_id"] == body.to_unit:
            raise HTTPException(
                409, f"unit {body.to_unit} already has task {old['task_no']} ({other['assignment_id']})"
            )
    stored = await store.get_programme(engine, old["programme_id"])
    assert stored is not None
    if stored.dispatched_at is None:
        raise HTTPException(409, f"programme {old['programme_id']} is not dispatched yet: revise its division instead")
    used = await change_store.used_ids(engine, old["programme_id"])
    new_id = next_assignment_id(old["programme_id"], old["task_no"], body.to_unit, used)
    command = ReassignAssignment(
        actor=caller.actor(),
        command_id=f"reassign:{new_id}",  # a repeat finds the result of the first
        to_unit=body.to_unit,
        to_assignment_id=new_id,
        reason=body.reason,
        carry_acceptance=body.carry_acceptance,
        carry_plan=body.carry_plan,
    )
    timeout = app.state.settings.update_timeout
    outcome = await run_update(app.state.temporal, assignment_id, UPDATE_REASSIGN, command, timeout=timeout)
    handover = (await query_status(app.state.temporal, assignment_id)).reassigned_to
    if handover is None or handover.to_assignment_id != new_id:
        raise HTTPException(409, f"assignment {assignment_id} was reassigned otherwise meanwhile; look at it again")
    lead = None if old["role"] == Role.LEAD.value else old["lead_assignment_id"]
    repointed = await change_store.record_reassignment(engine, old, handover, old["role"], lead)
    new_row = await change_store.responsibility(engine, new_id)
    assert new_row is not None
    specs = dispatching.specs([new_row], stored.body.schedule)
    started = await dispatching.dispatch(app.state.temporal, app.state.settings.task_queue, specs, caller.actor(),
                                         search_attributes=app.state.settings.search_attributes)  # fmt: skip
    if started.failed:
        raise HTTPException(503, f"{assignment_id} is closed, but {new_id} did not start ({started.failed[0][1]}); "
                                 "send the same reassignment again to start it")  # fmt: skip
    informed = await revision_jobs.tell_leads(app, dict.fromkeys(repointed, new_id), caller, f"reassign:{new_id}",
                                              f"lead reassigned to {body.to_unit}: {body.reason}")  # fmt: skip
    log.info("assignment.reassigned", assignment_id=assignment_id, to=new_id, sub=caller.sub, leads=informed)
    starts = "implementing" if handover.plan else "accepted" if handover.accepted else "assigned"
    return ReassignResult(assignment_id=assignment_id, reassigned_to=new_id, to_unit=body.to_unit, starts=starts,
                          event_ids=outcome.result.event_ids, leads_updated=informed)  # fmt: skip


# ---- revisions -------------------------------------------------------------------------------------


async def _plan_for(
    request: Request, body: ProgrammeImport
) -> tuple[store.StoredProgramme, list[dict[str, Any]], Plan]:
    engine = request.app.state.engine
    stored = await store.get_programme(engine, body.programme_id)
    if stored is None:
        raise HTTPException(404, f"no programme {body.programme_id}: import it first")
    check_references(body)
    in_force = await store.programme_responsibilities(engine, body.programme_id)
    used = await change_store.used_ids(engine, body.programme_id)
    return stored, in_force, plan(body.programme_id, in_force, body.division.responsibilities, used)


async def _revise(
    request: Request, caller: Principal, req: RevisionRequest, wait: bool
) -> RevisionAnswer | JSONResponse:
    app = request.app
    body = req.programme
    stored, in_force, diff = await _plan_for(request, body)
    current_revision = await revision_jobs.current_revision(app.state.engine, body.programme_id)
    last = await revision_jobs.unfinished(app.state.engine, body.programme_id, current_revision)
    if last is not None and not req.dry_run and req.version == last["version"]:
        # The same apply again: the revision stands; its workflows finish following it.
        job = revision_jobs.follow(app, body.programme_id, current_revision, caller)
        if wait:
            await asyncio.shield(job.task)
        return await revision_jobs.status(app, body.programme_id, current_revision)
    sha = store.content_sha256(body)
    now_version = version(current_revision, in_force, sha)
    held = await revision_jobs.with_reports(app.state.engine, diff)
    n = current_revision + 1
    answer = revision_jobs.answer(body.programme_id, n, now_version, diff, held)
    if diff.empty:
        return answer.model_copy(
            update={
                "state": "unchanged",
                "revision": current_revision,
                "message": "the division in force already is this one: nothing to change",
            }
        )
    if req.dry_run:
        return answer
    if req.version != now_version:
        raise HTTPException(409, f"the division changed since that dry run (its version {req.version}, now "
                                 f"{now_version}): run the dry run again and apply its version")  # fmt: skip
    if held and not req.force:
        names = ", ".join(f"{h.assignment_id} ({h.reports} reports)" for h in held)
        raise HTTPException(409, f"the revision removes {len(held)} assignment(s) with progress reports: {names}; "
                                 "apply with force to remove them (their reports stay in the ledger)")  # fmt: skip
    fact = ProgrammeRevised(revision=n, reason=req.reason or f"revision {n}", content_sha256=sha,
                            added=diff.added, removed=diff.removed, changed=diff.changed)  # fmt: skip
    if not await change_store.apply_revision(app.state.engine, body, sha, fact, diff, now_version, caller.sub):
        raise HTTPException(
            409, f"another revision of {body.programme_id} was applied meanwhile: run the dry run again"
        )
    imported = ProgrammeImported.model_validate_json(stored.event)
    await dispatching.record_revision(app.state.temporal, app.state.settings.task_queue, body.programme_id,
                                      imported, fact, caller.actor())  # fmt: skip
    log.info("programme.revised", programme_id=body.programme_id, revision=n, added=len(diff.added),
             removed=len(diff.removed), changed=len(diff.changed), sub=caller.sub)  # fmt: skip
    job = revision_jobs.follow(app, body.programme_id, n, caller)
    big = revision_jobs.actions(fact, diff.leads) > app.state.settings.revision_wait_limit
    if not wait or big:
        status = (await revision_jobs.status(app, body.programme_id, n)).model_dump(mode="json")
        return JSONResponse(status, 202, headers={"Location": f"/v1/programmes/{body.programme_id}/revisions/{n}"})
    await asyncio.shield(job.task)
    return await revision_jobs.status(app, body.programme_id, n)


REVISION_DOC = """Admins. `dry_run: true` (the default) answers the
difference between the division in force and the one sent: added, removed and changed (role, horizon)
assignments, the removed ones that hold progress reports, and a `version`. The same request with
`dry_run: false` and that `version` applies it: the revision's number and its difference become the
event ProgrammeRevised; new assignments start, removed ones close with the reason "removed in
revision N", changed ones are updated in their workflows. A stale version answers 409, as does a
removal of assignments with reports without `force`. A large revision (or `wait=false`) answers 202
and `GET /v1/programmes/{id}/revisions/{n}` reports how far its workflows have followed."""


@router.post("/v1/programmes/{programme_id}/revisions", response_model=RevisionAnswer, tags=["changes"],
             description=REVISION_DOC, summary="清单修订 revise the division (dry run, then apply)",
             responses={202: {"model": RevisionAnswer, "description": "applied; the workflows follow"}})  # fmt: skip
async def revise(
    request: Request, caller: Admin, programme_id: str, req: RevisionRequest,
    wait: Annotated[bool, Query(description="false: answer 202 once applied; the workflows follow")] = True,
) -> RevisionAnswer | JSONResponse:  # fmt: skip
    require_programme(caller, programme_id)
    if req.programme.programme_id != programme_id:
        raise HTTPException(422, f"programme.programme_id: {req.programme.programme_id} is not {programme_id}")
    return await _revise(request, caller, req, wait)


@router.get("/v1/programmes/{programme_id}/revisions/{n}", response_model=RevisionAnswer, tags=["changes"])
async def revision_status(request: Request, caller: Caller, programme_id: str, n: int) -> RevisionAnswer:
    """A revision as applied, and how far its workflows have followed it."""
    require_programme(caller, programme_id)
    return await revision_jobs.status(request.app, programme_id, n)


@router.post("/v1/programmes/{programme_id}/tasks/{task_no}/units", response_model=RevisionAnswer,
             tags=["changes"], summary="增加配合单位 add a unit to a task")  # fmt: skip
async def add_unit(request: Request, caller: Admin, programme_id: str, task_no: int, body: AddUnitBody) -> Any:
    """Admins: a unit joins a task (by default as a cooperating unit, until the lead's horizon).
    It is a revision of one added line, applied at once: its own number and ProgrammeRevised event."""
    require_programme(caller, programme_id)
    engine = request.app.state.engine
    stored = await store.get_programme(engine, programme_id)
    if stored is None:
        raise HTTPException(404, f"no programme {programme_id}")
    await known_unit(request, body.unit_id, "unit_id")
    on_task = await change_store.in_force_on_task(engine, programme_id, task_no)
    if task_no not in {t.no for t in stored.body.programme.tasks()}:
        raise HTTPException(404, f"no task {task_no} in programme {programme_id}")
    if any(r["unit_id"] == body.unit_id for r in on_task):
        raise HTTPException(409, f"unit {body.unit_id} already has task {task_no}")
    leads = [r["horizon_year"] for r in on_task if r["role"] == Role.LEAD.value]
    horizon = body.horizon_year or (leads[0] if leads else max((r["horizon_year"] for r in on_task), default=None))
    if horizon is None:
        raise HTTPException(422, "horizon_year: the task has no unit yet, so say until which year")
    in_force = await store.programme_responsibilities(engine, programme_id)
    lines = [Responsibility(task_no=r["task_no"], unit_id=r["unit_id"], role=Role(r["role"]),
                            horizon_year=r["horizon_year"]) for r in in_force]  # fmt: skip
    lines.append(Responsibility(task_no=task_no, unit_id=body.unit_id, role=body.role, horizon_year=horizon))
    b = stored.body
    listed = {u.unit_id for u in b.units}
    units = [*b.units, *[await known_unit(request, u, "unit_id") for u in sorted({x.unit_id for x in lines} - listed)]]
    division = b.division.model_copy(update={"responsibilities": lines})
    revised = b.model_copy(update={"division": division, "units": units})
    dry = await _revise(request, caller, RevisionRequest(programme=revised, reason=body.reason), True)
    assert isinstance(dry, RevisionAnswer)
    apply = RevisionRequest(programme=revised, dry_run=False, version=dry.version, reason=body.reason)
    return await _revise(request, caller, apply, True)
