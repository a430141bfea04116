"""Status for supervisors and units, from the read model: one page of assignments, the counts by
unit, task, group, year or role, and their exports; narrowed to the caller's area."""

from __future__ import annotations

from typing import Any, Literal

import httpx
import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from contracts.api import AssignmentSummary, Page, ProgrammeOut
from contracts.base import Stage, UserRole
from contracts.ids import PROGRAMME_ID_PATTERN
from services.progress import dashboard_queries, exports, readmodel, store
from services.progress.session_cookie import forward_token
from services.shared import access
from services.shared.auth import Principal
from services.shared.web import principal, refuse, require_role

log = structlog.get_logger()
router = APIRouter()
READ_ROLES = access.READERS


def wants_fresh(request: Request) -> bool:
    """`Cache-Control: no-cache` (RFC 9111) or `Pragma: no-cache`: an answer computed now, not
    one kept from before."""
    directives = request.headers.get("cache-control", "").split(",") + [request.headers.get("pragma", "")]
    return any(d.split("=", 1)[0].strip().lower() == "no-cache" for d in directives)


def answered(answer: readmodel.Answer) -> Response:
    """The body, and where it came from in a `Cache-Status` header (RFC 9211) when it could
    have been kept (the answer cache is on: see services/progress/answers.py)."""
    headers = None
    if answer.cache is not None:
        stored = "; stored" if answer.stored else ""
        headers = {"Cache-Status": f"policyflow-progress; {_CACHE_STATUS[answer.cache]}{stored}"}
    return Response(answer.body, media_type="application/json", headers=headers)


_CACHE_STATUS = {"hit": "hit", "miss": "fwd=miss", "bypass": "fwd=request"}  # RFC 9211 terms


OverdueFilter = Literal["none", "blue", "yellow", "red", "any"]


def readable_unit(caller: Principal, unit_id: str | None) -> str | None:
    """The unit whose status the caller reads: a department's is its own; asking for another
    unit is refused, not widened. What else the caller may list is its `access.area`."""
    require_role(caller, *READ_ROLES)
    if caller.role != UserRole.DEPARTMENT:
        return unit_id
    if unit_id is not None and unit_id != caller.unit_id:
        refuse(
            caller,
            unit_id,
            "unit",
            f"单位 {caller.unit_id} 不能查看单位 {unit_id} 的任务 "
            f"(unit {caller.unit_id} may not read unit {unit_id}'s assignments)",
        )
    return caller.unit_id


@router.get("/v1/status", response_model=Page[AssignmentSummary], tags=["status"])
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
    format: exports.Format | None = Query(default=None, description="xlsx or csv: every matching row, not a page"),
) -> Response:
    unit_id = readable_unit(caller, unit_id)
    tasks = await _group_tasks(request, group, programme_id) if group is not None else None
    f = readmodel.StatusFilter(
        programme_id=programme_id,
        unit_id=unit_id,
        task_no=task_no,
        stage=stage,
        overdue=overdue,
        tasks_by_programme=tasks,
        area=access.area(caller),
    )
    kind = exports.wanted(request, format)
    if kind is not None:
        items = await exports.status_items(request.app.state.engine, f)
        return exports.respond(kind, "status", exports.status_sheet(items, await exports.names(request)))
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
    format: exports.Format | None = None,
) -> Any:
    """Counts by stage and escalation level, and the on-time rate, per unit / task / group / year / role."""
    unit_id = readable_unit(caller, unit_id)
    engine = request.app.state.engine
    if by == "group":
        await _ensure_groups(request, programme_id)
    f = readmodel.StatusFilter(programme_id=programme_id, unit_id=unit_id, area=access.area(caller))
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
    kind = exports.wanted(request, format)
    if kind is not None:
        return exports.respond(kind, f"summary-{by}", exports.summary_sheet(by, items, await exports.names(request)))
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
    token = forward_token(request)
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
