"""The lead unit's view (牵头单位): every assignment of the tasks it leads, from the read model.

A department sees the tasks its unit leads; supervisors, verifiers and auditors see every task
(optionally one lead unit's). The lead writes the task's consolidated summary (汇总) with the
`submit_summary` command on its own assignment; the summary is part of that assignment's state.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.api import LeadTask, LeadTaskDetail
from contracts.base import Role, Stage, UserRole
from contracts.fold import AssignmentState
from contracts.ids import PROGRAMME_ID_PATTERN
from services.progress.api import READ_ROLES, detail
from services.progress.store import READ_MODEL
from services.shared import access
from services.shared.auth import Principal
from services.shared.web import principal, refuse, require_role

router = APIRouter(tags=["lead"])
A = READ_MODEL.assignments


def lead_first(s: AssignmentState) -> tuple[bool, str]:
    return s.role != Role.LEAD, s.unit_id


async def task_states(engine: AsyncEngine, programme_id: str, task_no: int) -> list[AssignmentState]:
    """Every assignment of one task, the lead's first, then by unit."""
    q = select(A.c.state).where(A.c.programme_id == programme_id, A.c.task_no == task_no)
    async with engine.connect() as conn:
        states = [AssignmentState.model_validate_json(raw) for raw in (await conn.execute(q)).scalars()]
    return sorted(states, key=lead_first)


async def led_tasks(engine: AsyncEngine, unit_id: str | None) -> list[tuple[str, int]]:
    """(programme, task) pairs with a lead assignment, of one unit or of all."""
    q = select(A.c.programme_id, A.c.task_no).where(A.c.role == Role.LEAD.value).distinct()
    if unit_id is not None:
        q = q.where(A.c.unit_id == unit_id)
    async with engine.connect() as conn:
        return sorted((r.programme_id, r.task_no) for r in await conn.execute(q))


async def is_lead(engine: AsyncEngine, unit_id: str | None, programme_id: str, task_no: int) -> bool:
    """Whether `unit_id` leads the task (has a lead assignment on it): it then reads every
    assignment of the task, its cooperating departments' and its districts'."""
    if unit_id is None:
        return False
    # By the record's unit and role, not the id: a reassigned lead's assignment has another id.
    q = select(A.c.assignment_id).where(
        A.c.programme_id == programme_id,
        A.c.task_no == task_no,
        A.c.unit_id == unit_id,
        A.c.role == Role.LEAD.value,
        A.c.stage != Stage.CANCELLED.value,
    )
    async with engine.connect() as conn:
        return (await conn.execute(q.limit(1))).first() is not None


def lead_units(states: list[AssignmentState]) -> list[str]:
    return [s.unit_id for s in states if s.role == Role.LEAD]


def visible(caller: Principal, states: list[AssignmentState]) -> list[AssignmentState]:
    """The task's assignments `access.decide` lets the caller read: all of them for its lead unit, a
    task supervisor, a city-wide one or an auditor; a district supervisor's own units' only; none for
    a department that does not lead the task."""
    leads = frozenset(lead_units(states))
    if caller.role == UserRole.DEPARTMENT and caller.unit_id not in leads:
        return []  # the lead view is the lead's: a unit reads its own assignment elsewhere
    return [
        s for s in states if access.decide(caller, access.Record(s.programme_id, s.task_no, s.unit_id, leads)).allowed
    ]


def overview(states: list[AssignmentState]) -> LeadTask:
    first = states[0]
    by_stage: dict[str, int] = {}
    overdue = {"blue": 0, "yellow": 0, "red": 0}
    for s in states:
        by_stage[s.stage.value] = by_stage.get(s.stage.value, 0) + 1
        if s.overdue_level.value in overdue:
            overdue[s.overdue_level.value] += 1
    summaries = [s.summary for s in states if s.role == Role.LEAD and s.summary]
    return LeadTask(
        programme_id=first.programme_id,
        task_no=first.task_no,
        task_title=next((s.task_title for s in states if s.task_title), ""),
        lead_unit_ids=lead_units(states),
        assignments=len(states),
        by_stage=by_stage,
        overdue=overdue,
        reports=sum(s.reports for s in states),
        summary=max(summaries, key=lambda x: str(x.get("at")), default=None),
    )


async def one_task(engine: AsyncEngine, caller: Principal, programme_id: str, task_no: int) -> LeadTaskDetail:
    """The task's assignments for `caller`, or 404 (no such task) / 403 (not its lead)."""
    require_role(caller, *READ_ROLES)
    states = await task_states(engine, programme_id, task_no)
    if not states:
        raise HTTPException(404, f"no task {task_no} in programme {programme_id}")
    seen = visible(caller, states)
    if not seen:
        leads = "、".join(lead_units(states)) or "none"
        who = (
            f"unit {caller.unit_id} does not lead it"
            if caller.unit_id
            else f"it is outside {access.area_words(caller)}"
        )
        refuse(
            caller, f"{programme_id}/{task_no}", "task", f"task {task_no} of {programme_id} is led by {leads}; {who}"
        )
    return LeadTaskDetail(**overview(seen).model_dump(), items=[detail(s) for s in seen])


async def tasks_for(engine: AsyncEngine, caller: Principal, unit_id: str | None) -> list[LeadTask]:
    require_role(caller, *READ_ROLES)
    if caller.role == UserRole.DEPARTMENT:
        if unit_id is not None and unit_id != caller.unit_id:
            refuse(caller, unit_id, "unit", f"unit {caller.unit_id} may not list the tasks unit {unit_id} leads")
        unit_id = caller.unit_id
    pairs = await led_tasks(engine, unit_id)
    if not pairs:
        return []
    q = select(A.c.state).where(tuple_(A.c.programme_id, A.c.task_no).in_(pairs))
    by_task: dict[tuple[str, int], list[AssignmentState]] = {pair: [] for pair in pairs}
    async with engine.connect() as conn:
        for raw in (await conn.execute(q)).scalars():
            s = AssignmentState.model_validate_json(raw)
            by_task[(s.programme_id, s.task_no)].append(s)
    shown = (visible(caller, sorted(states, key=lead_first)) for states in by_task.values())
    return [overview(states) for states in shown if states]


@router.get("/v1/lead/tasks", response_model=list[LeadTask], summary="牵头任务 the tasks a unit leads")
async def list_tasks(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    unit_id: Annotated[str | None, Query(max_length=64, description="a lead unit (not for departments)")] = None,
) -> Any:
    """A department: the tasks its unit leads. Others: every task with a lead, or one unit's."""
    return await tasks_for(request.app.state.engine, caller, unit_id)


@router.get(
    "/v1/lead/tasks/{programme_id}/{task_no}",
    response_model=LeadTaskDetail,
    summary="牵头任务详情 every assignment of a task, for its lead unit",
)
async def show_task(
    request: Request,
    caller: Annotated[Principal, Depends(principal)],
    programme_id: Annotated[str, Path(max_length=64, pattern=PROGRAMME_ID_PATTERN)],
    task_no: Annotated[int, Path(ge=1, le=999)],
) -> Any:
    """The lead's own assignment and every cooperating department's and district's, with their
    latest reports (and evidence), verification results and the lead's summary."""
    return await one_task(request.app.state.engine, caller, programme_id, task_no)
