"""Progress service HTTP API: submissions become workflow updates; status comes from the read model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
import structlog
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel

from contracts.api import (
    AssignmentDetail,
    AssignmentSummary,
    CancelBody,
    CommandAccepted,
    Page,
    PlanBody,
    ProgrammeOut,
    ReportBody,
    ReviewBody,
    VerificationBody,
    VerificationRequestBody,
)
from contracts.base import Stage, UserRole
from contracts.commands import (
    UPDATE_CANCEL,
    UPDATE_REPORT_PROGRESS,
    UPDATE_REQUEST_VERIFICATION,
    UPDATE_REVIEW_PLAN,
    UPDATE_SUBMIT_PLAN,
    UPDATE_VERIFY,
    CancelAssignment,
    ReportProgress,
    RequestVerification,
    ReviewAnnualPlan,
    SubmitAnnualPlan,
    VerifyYear,
)
from contracts.fold import AssignmentState
from contracts.ids import PROGRAMME_ID_PATTERN, parse_assignment_id, workflow_id
from contracts.subjects import event_stream_config
from services.progress import dashboard_queries, readmodel, store
from services.shared.auth import Principal
from services.shared.lean import lean_get
from services.shared.temporal import query_status, run_update
from services.shared.web import principal, require_role, require_unit, token_from

log = structlog.get_logger()
router = APIRouter()

D, S, V, AU = UserRole.DEPARTMENT, UserRole.SUPERVISOR, UserRole.VERIFIER, UserRole.AUDITOR
# Who may send which command (the workflow's validators agree). Departments act only on their
# own unit's assignments (the unit is part of the assignment id); reviewing, verifying and
# cancelling are never a department's, so no unit approves or passes its own work. Verifiers
# and supervisors verify (城市体检 is the supervisors' too). Auditors are read-only.
COMMAND_ROLES: dict[str, tuple[UserRole, ...]] = {
    UPDATE_SUBMIT_PLAN: (D,),
    UPDATE_REPORT_PROGRESS: (D,),
    UPDATE_REQUEST_VERIFICATION: (D,),
    UPDATE_REVIEW_PLAN: (S,),
    UPDATE_VERIFY: (V, S),
    UPDATE_CANCEL: (S,),
}
READ_ROLES = (D, S, V, AU)
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


@dataclass(frozen=True)
class Target:
    assignment_id: str
    unit_id: str
    caller: Principal


def parse_target(assignment_id: str, caller: Principal) -> Target:
    parsed = parse_assignment_id(assignment_id)
    if parsed is None:
        raise HTTPException(404, f"no assignment {assignment_id}")
    return Target(assignment_id, parsed[2], caller)


def authorize(update: str) -> Callable[..., Awaitable[Target]]:
    """A dependency that checks the caller before the body is even read (so 401/403/404 come first)."""
    roles = COMMAND_ROLES[update]

    async def check(assignment_id: str, caller: Principal = Depends(principal)) -> Target:
        target = parse_target(assignment_id, caller)
        require_role(caller, *roles)
        require_unit(caller, target.unit_id)
        return target

    return check


async def reader(assignment_id: str, caller: Principal = Depends(principal)) -> Target:
    # Coroutines, these dependencies: FastAPI would run plain functions in its thread pool.
    target = parse_target(assignment_id, caller)
    require_role(caller, *READ_ROLES)
    require_unit(caller, target.unit_id)
    return target


# Every command becomes (at least) one event, and the stream refuses a message over its max_msg_size:
# a command that large would be folded by the workflow and then never published, wedging the
# assignment. Refuse it here, leaving room for the envelope and the facts' own fields.
MAX_COMMAND_BYTES = int(str(event_stream_config()["max_msg_size"])) - 16 * 1024


async def _send(request: Request, target: Target, update: str, command: BaseModel, key: str | None) -> CommandAccepted:
    size = len(command.model_dump_json().encode())
    if size > MAX_COMMAND_BYTES:
        log.warning("command.too_large", assignment_id=target.assignment_id, update=update, bytes=size,
                    limit=MAX_COMMAND_BYTES, sub=target.caller.sub)
        raise HTTPException(
            413, f"this {update.replace('_', ' ')} would be recorded as an event of about {size} bytes; "
            f"an event holds at most {MAX_COMMAND_BYTES}: shorten the narrative, the names or the lists",
        )
    app = request.app
    outcome = await run_update(
        app.state.temporal, target.assignment_id, update, command, idempotency_key=key,
        actor=target.caller.actor(), timeout=app.state.settings.update_timeout,
    )
    r = outcome.result
    return CommandAccepted(
        assignment_id=target.assignment_id, stage=Stage(r.stage), year=r.year, event_ids=r.event_ids,
        replayed=outcome.replayed,
    )


@router.post("/v1/assignments/{assignment_id}/plans", response_model=CommandAccepted, tags=["commands"])
async def submit_plan(
    request: Request, body: PlanBody, target: Annotated[Target, Depends(authorize(UPDATE_SUBMIT_PLAN))],
    key: IdempotencyKey = None,
) -> CommandAccepted:
    cmd = SubmitAnnualPlan(actor=target.caller.actor(), command_id=key, **body.model_dump())
    return await _send(request, target, UPDATE_SUBMIT_PLAN, cmd, key)


@router.post("/v1/assignments/{assignment_id}/plans/{year}/review", response_model=CommandAccepted, tags=["commands"])
async def review_plan(
    request: Request, year: Annotated[int, Path(ge=2000, le=2100)], body: ReviewBody,
    target: Annotated[Target, Depends(authorize(UPDATE_REVIEW_PLAN))], key: IdempotencyKey = None,
) -> CommandAccepted:
    cmd = ReviewAnnualPlan(actor=target.caller.actor(), command_id=key, year=year, **body.model_dump())
    return await _send(request, target, UPDATE_REVIEW_PLAN, cmd, key)


@router.post("/v1/assignments/{assignment_id}/reports", response_model=CommandAccepted, tags=["commands"])
async def report_progress(
    request: Request, body: ReportBody, target: Annotated[Target, Depends(authorize(UPDATE_REPORT_PROGRESS))],
    key: IdempotencyKey = None,
) -> CommandAccepted:
    cmd = ReportProgress(actor=target.caller.actor(), command_id=key, **body.model_dump())
    return await _send(request, target, UPDATE_REPORT_PROGRESS, cmd, key)


@router.post(
    "/v1/assignments/{assignment_id}/verification-requests", response_model=CommandAccepted, tags=["commands"]
)
async def request_verification(
    request: Request, target: Annotated[Target, Depends(authorize(UPDATE_REQUEST_VERIFICATION))],
    body: VerificationRequestBody | None = None, key: IdempotencyKey = None,
) -> CommandAccepted:
    note = body.note if body else ""
    cmd = RequestVerification(actor=target.caller.actor(), command_id=key, note=note)
    return await _send(request, target, UPDATE_REQUEST_VERIFICATION, cmd, key)


@router.post("/v1/assignments/{assignment_id}/verification", response_model=CommandAccepted, tags=["commands"])
async def verify(
    request: Request, body: VerificationBody, target: Annotated[Target, Depends(authorize(UPDATE_VERIFY))],
    key: IdempotencyKey = None,
) -> CommandAccepted:
    cmd = VerifyYear(actor=target.caller.actor(), command_id=key, **body.model_dump())
    return await _send(request, target, UPDATE_VERIFY, cmd, key)


@router.post("/v1/assignments/{assignment_id}/cancel", response_model=CommandAccepted, tags=["commands"])
async def cancel(
    request: Request, body: CancelBody, target: Annotated[Target, Depends(authorize(UPDATE_CANCEL))],
    key: IdempotencyKey = None,
) -> CommandAccepted:
    cmd = CancelAssignment(actor=target.caller.actor(), command_id=key, reason=body.reason)
    return await _send(request, target, UPDATE_CANCEL, cmd, key)


def detail(state: AssignmentState) -> AssignmentDetail:
    return AssignmentDetail(
        assignment_id=state.assignment_id,
        programme_id=state.programme_id,
        task_no=state.task_no,
        task_title=state.task_title,
        unit_id=state.unit_id,
        role=state.role,
        stage=state.stage,
        year=state.year,
        overdue_level=state.overdue_level,
        next_deadline=state.next_deadline(),
        percent=state.percent,
        horizon_year=state.horizon_year,
        deadlines=sorted(state.deadlines.values(), key=lambda d: (d.due, d.key)),
        plan=state.plan,
        last_report=state.last_report.model_dump(mode="json") if state.last_report else None,
        counts={
            "reports": state.reports,
            "cooperating_reports": state.cooperating_reports,
            "plans_returned": state.plans_returned,
            "verifications_failed": state.verifications_failed,
            "reminders": state.reminders,
            "escalations": state.escalations_total,
        },
        workflow_id=workflow_id(state.assignment_id),
    )


DetailSource = Literal["workflow", "read_model"]


@lean_get(router, "/v1/assignments/{assignment_id}", response_model=AssignmentDetail, tags=["status"])
async def show(
    request: Request, target: Annotated[Target, Depends(reader)],
    source: Annotated[DetailSource, Query(
        description="workflow (default): live, the workflow's own state, which a command's effect is "
        "already in; read_model: the progress read model's copy of the same fold, as of its stream "
        "position (eventually consistent, a row lookup that needs no worker)",
    )] = "workflow",
) -> Response:  # fmt: skip
    if source == "read_model":
        reader: readmodel.StatusReader = request.app.state.status_reader

        async def from_read_model() -> bytes:
            raw = await reader.state(target.assignment_id)
            if raw is None:
                raise HTTPException(404, f"no assignment {target.assignment_id} in the read model")
            return detail(AssignmentState.model_validate_json(raw)).model_dump_json().encode()

        answer = await reader.answer(("detail", target.assignment_id), from_read_model, wants_fresh(request))
        return answered(answer)
    state = await query_status(request.app.state.temporal, target.assignment_id)
    # Serialised here: the model was just built and validated, response_model would do it again.
    return Response(detail(state).model_dump_json(), media_type="application/json")


def wants_fresh(request: Request) -> bool:
    """`Cache-Control: no-cache` (RFC 9111) or `Pragma: no-cache`: an answer computed now, not
    one kept from before."""
    directives = request.headers.get("cache-control", "").split(",") + [request.headers.get("pragma", "")]
    return any(d.split("=", 1)[0].strip().lower() == "no-cache" for d in directives)


def answered(answer: readmodel.Answer) -> Response:
    """The body, and where it came from in a `Cache-Status` header (RFC 9211) when it could
    have been kept (a read model on a SQLite file: see services/progress/answers.py)."""
    headers = None
    if answer.cache is not None:
        stored = "; stored" if answer.stored else ""
        headers = {"Cache-Status": f"policyflow-progress; {_CACHE_STATUS[answer.cache]}{stored}"}
    return Response(answer.body, media_type="application/json", headers=headers)


_CACHE_STATUS = {"hit": "hit", "miss": "fwd=miss", "bypass": "fwd=request"}  # RFC 9211 terms


OverdueFilter = Literal["none", "blue", "yellow", "red", "any"]


@lean_get(router, "/v1/status", response_model=Page[AssignmentSummary], tags=["status"])
async def status(
    request: Request,
    caller: Principal = Depends(principal),
    # A programme id, or 422: with `group` it goes into the URL asked of the assignment service.
    programme_id: str | None = Query(default=None, max_length=64, pattern=PROGRAMME_ID_PATTERN),
    unit_id: str | None = Query(default=None, max_length=64),
    task_no: int | None = Query(default=None, ge=1, le=999),
    group: int | None = Query(default=None, ge=1, le=99),
    stage: Stage | None = None,
    overdue: OverdueFilter | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=2**63 - 1),  # a database integer
) -> Response:
    require_role(caller, *READ_ROLES)
    if caller.role == UserRole.DEPARTMENT:
        # A department's status is its own unit's; asking for another unit is refused, not widened.
        if unit_id is not None:
            require_unit(caller, unit_id)
        unit_id = caller.unit_id
    tasks = await _group_tasks(request, group, programme_id) if group is not None else None
    f = readmodel.StatusFilter(
        programme_id=programme_id, unit_id=unit_id, task_no=task_no, stage=stage, overdue=overdue,
        tasks_by_programme=tasks,
    )
    # The page is written as JSON straight from the summary columns (StatusReader.page_json): the
    # document response_model describes, without 50 models built and then validated again.
    # Kept until the read model changes (answers.py); `Cache-Control: no-cache` asks for a new one.
    return answered(await request.app.state.status_reader.page_json(f, limit, offset, wants_fresh(request)))


@router.get("/v1/status/summary", tags=["status"])
async def status_summary(
    request: Request,
    caller: Principal = Depends(principal),
    by: Literal["unit", "task", "group", "year", "role"] = "unit",
    programme_id: str | None = Query(default=None, max_length=64, pattern=PROGRAMME_ID_PATTERN),
    unit_id: str | None = Query(default=None, max_length=64),
) -> dict[str, Any]:
    """Counts by stage and escalation level, and the on-time rate, per unit / task / group / year / role."""
    require_role(caller, *READ_ROLES)
    if caller.role == UserRole.DEPARTMENT:
        if unit_id is not None:
            require_unit(caller, unit_id)
        unit_id = caller.unit_id
    engine = request.app.state.engine
    if by == "group":
        await _ensure_groups(request, programme_id)
    f = readmodel.StatusFilter(programme_id=programme_id, unit_id=unit_id)
    rows = await dashboard_queries.stats_by(engine, by, readmodel.where(f))
    items = [
        {
            "key": r.unit_id,
            "total": r.total,
            "completed": r.completed,
            "cancelled": r.cancelled,
            "not_started": r.not_started,
            "overdue": {"blue": r.blue, "yellow": r.yellow, "red": r.red},
            "on_time_rate": None if r.on_time_rate is None else round(r.on_time_rate, 4),
        }
        for r in rows
    ]
    return {"by": by, "items": items, "total": len(items)}


async def _ensure_groups(request: Request, programme_id: str | None) -> None:
    """Fill the task-group cache for the programme (or every programme seen) from the assignment service."""
    engine = request.app.state.engine
    wanted = [programme_id] if programme_id else await readmodel.programme_ids(engine)
    missing = [p for p in wanted if p not in await store.known_group_programmes(engine)]
    for pid in missing:
        await _fetch_groups(request, pid)


async def _group_tasks(request: Request, group: int, programme_id: str | None) -> dict[str, list[int]]:
    """Task numbers of a group, per programme, from the cache or else the assignment service."""
    await _ensure_groups(request, programme_id)
    return await store.tasks_in_group(request.app.state.engine, group)


async def _fetch_groups(request: Request, programme_id: str) -> None:
    settings, http = request.app.state.settings, request.app.state.http
    token = token_from(request)
    url = f"{settings.assignment_url.rstrip('/')}/v1/programmes/{programme_id}"
    try:
        resp = await http.get(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    except httpx.HTTPError as exc:
        raise HTTPException(503, f"the group filter needs the assignment service ({url}): {exc}") from exc
    if resp.status_code == 404:
        return
    if resp.status_code != 200:
        raise HTTPException(503, f"the assignment service answered {resp.status_code} for {url}")
    prog = ProgrammeOut.model_validate(resp.json()).programme
    rows: list[dict[str, Any]] = [
        {"task_no": t.no, "group_no": g.no, "group_title": g.title, "task_title": t.title}
        for g in prog.groups
        for t in g.tasks
    ]
    await store.store_task_groups(request.app.state.engine, programme_id, rows)
    log.info("status.groups_cached", programme_id=programme_id, tasks=len(rows))


@router.get("/healthz", tags=["health"])
async def healthz(request: Request) -> dict[str, Any]:
    return {
        "status": "ok",
        "service": "progress",
        "read_model_position": await readmodel.position(request.app.state.engine),
    }
