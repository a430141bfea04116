"""Progress service HTTP API: every command on an assignment, from the command table, becomes a
workflow update; status comes from the read model."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.api import AssignmentDetail, CommandAccepted
from contracts.base import Stage, UserRole
from contracts.command_table import COMMANDS, CommandRow
from contracts.fold import AssignmentState
from contracts.ids import parse_assignment_id, workflow_id
from contracts.subjects import event_stream_config
from services.progress import readmodel
from services.progress.status_routes import answered, wants_fresh
from services.shared import access
from services.shared.auth import Principal
from services.shared.temporal import query_status, run_update
from services.shared.web import enforce, principal, refuse_hidden_in_names

log = structlog.get_logger()
router = APIRouter()

READ_ROLES = access.READERS
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


@dataclass(frozen=True)
class Target:
    assignment_id: str
    caller: Principal
    record: access.Record | None = None


class Allowed:
    """A dependency: the assignment and its caller, if `access.decide` lets the caller read it
    (`senders` None) or send it a command of those senders. A dependency runs before the body is
    validated, so 401, 403 and 404 come before any 422.

    An id that names no assignment is 404 with the closest ids the caller may see; an existing
    assignment outside the caller's area is 403, for reads and commands alike (ids follow from the
    public task and unit lists, so telling the two apart hides nothing)."""

    def __init__(self, senders: tuple[UserRole, ...] | None = None) -> None:
        self.senders = senders

    async def __call__(
        self, request: Request, assignment_id: str, caller: Annotated[Principal, Depends(principal)]
    ) -> Target:
        if parse_assignment_id(assignment_id) is None:  # the id's shape only; its unit is read from the record
            raise await not_found(request, assignment_id, caller)
        found = await assignment_record(request, assignment_id)
        if found is None:
            raise await not_found(request, assignment_id, caller)
        programme_id, task_no, unit_id = found
        leads: frozenset[str] = frozenset()
        if caller.role == UserRole.DEPARTMENT and caller.unit_id != unit_id and self.senders is None:
            leads = await request.app.state.status_reader.lead_units(programme_id, task_no)
        record = access.Record(programme_id, task_no, unit_id, leads)
        enforce(caller, access.decide(caller, record, self.senders), assignment_id)
        return Target(assignment_id, caller, record)


async def assignment_record(request: Request, assignment_id: str) -> tuple[str, int, str] | None:
    """Programme, task and unit of an assignment, from the read model or else (an assignment
    dispatched just now) from its workflow: never parsed from the id, which a reassignment or a
    new generation (`….g2`) does not keep in step with the unit."""
    reader: readmodel.StatusReader = request.app.state.status_reader
    found = await reader.record(assignment_id)
    temporal = getattr(request.app.state, "temporal", None)
    if found is not None or temporal is None:
        return found
    try:
        s = await query_status(temporal, assignment_id)
    except HTTPException as exc:
        if exc.status_code == 404:
            return None
        raise
    return s.programme_id, s.task_no, s.unit_id


async def not_found(request: Request, assignment_id: str, caller: Principal) -> HTTPException:
    """404, suggesting only ids the caller may see."""
    own = caller.unit_id if caller.role == UserRole.DEPARTMENT else None
    near = await request.app.state.status_reader.ids_like(assignment_id, access.area(caller))
    log.info("assignment.not_found", assignment_id=assignment_id, sub=caller.sub, suggested=near)
    words = f"no assignment {assignment_id}"
    if near:
        return HTTPException(404, f"{words}; did you mean {' or '.join(near)}?")
    if parse_assignment_id(assignment_id) is None:
        words += " (an assignment id is programme.tNN.unit, e.g. cq-2022-79.t14.yuzhong)"
    where = f"`policyflow inbox` lists unit {own}'s assignments" if own else "`policyflow status` lists assignments"
    return HTTPException(404, f"{words}; {where}")


# Every command becomes (at least) one event, and the stream refuses a message over its max_msg_size:
# a command that large would be folded by the workflow and then never published, wedging the
# assignment. Refuse it here, leaving room for the envelope and the facts' own fields.
MAX_COMMAND_BYTES = int(str(event_stream_config()["max_msg_size"])) - 16 * 1024

# A check of a row's command against what this service keeps, by row name, before the update is sent
# (evidence.py: a report names only files uploaded for its assignment). It raises HTTPException.
CommandCheck = Callable[[Request, str, BaseModel], Awaitable[None]]
COMMAND_CHECKS: dict[str, CommandCheck] = {}


class CommandEndpoint:
    """The endpoint of one row of the command table: `POST /v1/assignments/{assignment_id}<row.path>`.

    FastAPI reads an endpoint's parameters from its signature; this one is built from the row (the
    sender check, the Idempotency-Key, the path's fields with the command's own constraints, the
    body), so the request is validated and documented as if each route were written out."""

    def __init__(self, row: CommandRow) -> None:
        self.row = row
        kw = inspect.Parameter.KEYWORD_ONLY
        params = [
            inspect.Parameter("request", kw, annotation=Request),
            inspect.Parameter("target", kw, annotation=Annotated[Target, Depends(Allowed(row.senders))]),
            inspect.Parameter("key", kw, annotation=IdempotencyKey, default=None),
        ]
        for name in row.path_fields:
            field = row.command.model_fields[name]  # its type and constraints (2000 <= year <= 2100)
            # A type made at run time for FastAPI to read, which mypy cannot follow.
            in_path = Annotated[(field.annotation, *field.metadata, Path())]  # type: ignore[name-defined]
            params.append(inspect.Parameter(name, kw, annotation=in_path))
        if row.body is not None:
            body, default = (row.body, inspect.Parameter.empty) if row.body_required else (row.body | None, None)
            params.append(inspect.Parameter("body", kw, annotation=body, default=default))
        self.__signature__ = inspect.Signature(params, return_annotation=CommandAccepted)

    async def __call__(
        self, request: Request, target: Target, key: str | None, body: BaseModel | None = None, **path_fields: Any
    ) -> CommandAccepted:
        row, caller = self.row, target.caller
        fields = body.model_dump() if body is not None else {}
        command = row.command(actor=caller.actor(), command_id=key, **path_fields, **fields)
        size = len(command.model_dump_json().encode())
        if size > MAX_COMMAND_BYTES:
            log.warning(
                "command.too_large",
                assignment_id=target.assignment_id,
                update=row.name,
                bytes=size,
                limit=MAX_COMMAND_BYTES,
                sub=caller.sub,
            )
            raise HTTPException(
                413,
                f"{row.what} would be recorded as an event of about {size} bytes; an event holds at most "
                f"{MAX_COMMAND_BYTES}: shorten the narrative, the names or the lists",
            )
        refuse_hidden_in_names(fields)
        check = COMMAND_CHECKS.get(row.name)
        if check is not None:
            await check(request, target.assignment_id, command)
        settings = request.app.state.settings
        outcome = await run_update(
            request.app.state.temporal,
            target.assignment_id,
            row.name,
            command,
            idempotency_key=key,
            actor=caller.actor(),
            timeout=settings.update_timeout,
        )
        r = outcome.result
        return CommandAccepted(
            assignment_id=target.assignment_id,
            stage=Stage(r.stage),
            year=r.year,
            event_ids=r.event_ids,
            replayed=outcome.replayed,
            n=r.n,
        )


for _row in COMMANDS:
    router.add_api_route(
        f"/v1/assignments/{{assignment_id}}{_row.path}",
        CommandEndpoint(_row),
        methods=["POST"],
        response_model=CommandAccepted,
        tags=["commands"],
        summary=_row.summary,
        description=_row.who_may_send,
        operation_id=_row.name,
        name=_row.name,
    )


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
        lead_assignment_id=state.lead_assignment_id,
        plan=state.plan,
        last_report=state.last_report.model_dump(mode="json") if state.last_report else None,
        last_verification=state.last_verification,
        summary=state.summary,
        self_evaluation=state.self_evaluation,
        evaluations=state.evaluations,
        extensions=[x.model_dump(mode="json") for x in state.extensions],
        closure=state.closure,
        counts={
            "reports": state.reports,
            "cooperating_reports": state.cooperating_reports,
            "plans_returned": state.plans_returned,
            "verifications_failed": state.verifications_failed,
            "reminders": state.reminders,
            "escalations": state.escalations_total,
            "manual_reminders": state.manual_reminders,
        },
        workflow_id=workflow_id(state.assignment_id),
        closed_reason=state.cancel_reason,
        reassigned_from=state.reassigned_from,
        reassigned_to=state.reassigned_to,
        revision=state.revision,
    )


DetailSource = Literal["workflow", "read_model"]


@router.get("/v1/assignments/{assignment_id}", response_model=AssignmentDetail, tags=["status"])
async def show(
    request: Request, target: Annotated[Target, Depends(Allowed())],
    source: Annotated[DetailSource, Query(
        description="workflow (default): live, the workflow's own state, which a command's effect is "
        "already in; read_model: the progress read model's copy of the same fold, as of its stream "
        "position (eventually consistent, a row lookup that needs no worker)",
    )] = "workflow",
) -> Response:  # fmt: skip
    if source == "read_model":
        reader: readmodel.StatusReader = request.app.state.status_reader

        async def from_read_model(conn: AsyncConnection) -> bytes:
            raw = await reader.state(target.assignment_id, conn)
            if raw is None:
                raise HTTPException(404, f"no assignment {target.assignment_id} in the read model")
            return detail(AssignmentState.model_validate_json(raw)).model_dump_json().encode()

        answer = await reader.answer(("detail", target.assignment_id), from_read_model, wants_fresh(request))
        return answered(answer)
    state = await query_status(request.app.state.temporal, target.assignment_id)
    # Serialised here: the model was just built and validated, response_model would do it again.
    return Response(detail(state).model_dump_json(), media_type="application/json")


@router.get("/healthz", tags=["health"])
@router.get("/readyz", tags=["health"])
async def healthz(request: Request, response: Response) -> dict[str, Any]:
    """Readiness: 503 with the reason while the read model takes no events (its disk is full)."""
    body: dict[str, Any] = {
        "status": "ok",
        "service": "progress",
        # On the reader's engine: one round trip on PostgreSQL, without BEGIN and ROLLBACK around it.
        "read_model_position": await readmodel.position(request.app.state.status_reader.engine),
    }
    trouble = request.app.state.read_model_runner.trouble
    if trouble:
        response.status_code = 503
        body |= {
            "status": "unavailable",
            "reason": f"进展视图暂停更新：磁盘已满，腾出空间后自动恢复（read model paused: {trouble}）",
        }
    return body
