"""Temporal plumbing for the services: connecting (services.shared.temporal_connect), idempotent updates,
and HTTP error mapping.

Commands become workflow updates. With an Idempotency-Key the update id is derived from the
key (scoped by caller and update), so a retried request either finds the completed update
(Temporal keeps its outcome) and reports `replayed`, or attaches to the one still running.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import HTTPException
from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from contracts.base import Actor
from contracts.commands import KEY_REUSED, KEY_REUSED_WORDS, QUERY_STATUS, Command, CommandResult, request_digest
from contracts.fold import AssignmentState
from contracts.ids import workflow_id
from services.shared.temporal_connect import connect, connect_with

log = structlog.get_logger()
__all__ = ["connect", "connect_with", "http_error", "query_status", "run_update", "update_id", "workflow_exists"]


def update_id(update: str, actor: Actor, idempotency_key: str) -> str:
    """Deterministic update id: one key means one command per caller and kind of command."""
    digest = hashlib.sha256(f"{actor.sub}\n{update}\n{idempotency_key}".encode()).hexdigest()[:40]
    return f"{update}-{digest}"


def _not_found(exc: RPCError, assignment_id: str) -> HTTPException:
    if "already completed" in exc.message or "already finished" in exc.message:
        return HTTPException(409, f"assignment {assignment_id} is closed; it takes no more commands")
    return HTTPException(404, f"no assignment {assignment_id}")


def http_error(exc: BaseException, assignment_id: str) -> HTTPException:
    """Map a Temporal client error to the HTTP answer a caller can act on."""
    if isinstance(exc, WorkflowUpdateFailedError):
        cause = exc.cause
        if isinstance(cause, ApplicationError):
            return HTTPException(422 if cause.type == KEY_REUSED else 409, cause.message or str(cause))
        if isinstance(cause, FailureError):
            return HTTPException(409, cause.message or str(cause))
        return HTTPException(409, str(cause))
    if isinstance(exc, RPCError):
        if exc.status == RPCStatusCode.NOT_FOUND:
            return _not_found(exc, assignment_id)
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            return HTTPException(409, exc.message)
        return HTTPException(503, f"workflow service unavailable: {exc.message}")
    if isinstance(exc, WorkflowQueryRejectedError):
        return HTTPException(409, f"assignment {assignment_id} cannot be queried now ({exc.status})")
    if isinstance(exc, WorkflowQueryFailedError):
        return HTTPException(503, f"status query failed: {exc.message}")
    if isinstance(exc, WorkflowUpdateRPCTimeoutOrCancelledError | TimeoutError):
        return HTTPException(
            504, "the workflow did not answer in time; retry with the same Idempotency-Key to avoid a duplicate"
        )
    raise exc


@dataclass(frozen=True)
class Outcome:
    result: CommandResult
    replayed: bool


async def _earlier(handle: WorkflowHandle[Any, Any], uid: str, timeout: float) -> CommandResult | None:
    """The outcome of an update with this id, if one was submitted before."""
    try:
        res = await asyncio.wait_for(handle.get_update_handle(uid, result_type=CommandResult).result(), timeout)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and "update" in exc.message.lower():
            return None
        raise
    return res if isinstance(res, CommandResult) else CommandResult.model_validate(res)


# The server's answer when the workflow task that carried the update failed before accepting it,
# as when a signal arrives while the task continues the workflow as new (a cooperating unit's
# report reaching its lead during the lead's verification): the update never took effect, and
# the next workflow task sees both. Sent again, with the same id.
_TASK_FAILED = "unexpected workflow task failure"
UPDATE_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0)


async def _execute(handle: WorkflowHandle[Any, Any], update: str, command: BaseModel, uid: str | None) -> Any:
    for delay in UPDATE_RETRY_DELAYS:
        try:
            return await handle.execute_update(update, command, id=uid, result_type=CommandResult)
        except RPCError as exc:
            if _TASK_FAILED not in exc.message:
                raise
            log.info("command.retried", workflow_id=handle.id, update=update, reason=exc.message, delay=delay)
            await asyncio.sleep(delay)
    return await handle.execute_update(update, command, id=uid, result_type=CommandResult)


async def run_update(
    client: Client,
    assignment_id: str,
    update: str,
    command: BaseModel,
    idempotency_key: str | None = None,
    actor: Actor | None = None,
    timeout: float = 30.0,
) -> Outcome:
    """Send one command as a workflow update; errors become HTTPExceptions."""
    handle = client.get_workflow_handle(workflow_id(assignment_id))
    uid = update_id(update, actor, idempotency_key) if idempotency_key and actor else None
    asked = request_digest(update, command) if isinstance(command, Command) else ""
    try:
        if uid is not None:
            earlier = await _earlier(handle, uid, timeout)
            if earlier is not None:
                _same_request(earlier, asked, assignment_id, update)
                log.info("command.replayed", assignment_id=assignment_id, update=update, update_id=uid)
                return Outcome(earlier, replayed=True)
        result = await asyncio.wait_for(_execute(handle, update, command, uid), timeout)
    except (WorkflowUpdateFailedError, RPCError, WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError) as exc:
        err = http_error(exc, assignment_id)
        log.info(
            "command.refused", assignment_id=assignment_id, update=update, status=err.status_code, reason=err.detail
        )
        raise err from exc
    if not isinstance(result, CommandResult):
        result = CommandResult.model_validate(result)
    _same_request(result, asked, assignment_id, update)  # attached to an update of the same key still running
    log.info("command.done", assignment_id=assignment_id, update=update, event_ids=result.event_ids)
    return Outcome(result, replayed=False)


def _same_request(result: CommandResult, asked: str, assignment_id: str, update: str) -> None:
    """Refuse a key sent again with a different request (its result names what it was given)."""
    if result.request and asked and result.request != asked:
        log.info("command.key_reused", assignment_id=assignment_id, update=update, status=422)
        raise HTTPException(422, KEY_REUSED_WORDS)


async def workflow_exists(client: Client, assignment_id: str, timeout: float = 5.0) -> bool | None:
    """Whether the assignment's workflow was ever started (running or closed); None when Temporal
    could not say."""
    try:
        await asyncio.wait_for(client.get_workflow_handle(workflow_id(assignment_id)).describe(), timeout)
    except RPCError as exc:
        return False if exc.status == RPCStatusCode.NOT_FOUND else None
    except TimeoutError:
        return None
    return True


async def query_status(client: Client, assignment_id: str, timeout: float = 15.0) -> AssignmentState:
    """The workflow's own view of the assignment (the fold over its facts)."""
    handle = client.get_workflow_handle(workflow_id(assignment_id))
    try:
        state = await asyncio.wait_for(handle.query(QUERY_STATUS, result_type=AssignmentState), timeout)
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError, TimeoutError) as exc:
        raise http_error(exc, assignment_id) from exc
    return state if isinstance(state, AssignmentState) else AssignmentState.model_validate(state)
