"""催办 to many assignments at once: a preview of how many match, then one `remind` update each.

The assignments are those of the read model matching the filter that are still open. A set
larger than `limit` is refused (409) so a filter typed too wide reaches nobody by mistake. Small
sets are sent before the answer (200); larger ones, or with `wait=false`, answer 202 at once
and `GET /v1/reminders/{job_id}` reports progress, as a dispatch does. Each update carries the
job's id as its command id and Idempotency-Key, so a job resumed after an error reminds no one
twice.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from contracts.api import BulkReminderBody, BulkReminderStatus
from contracts.base import Stage, UserRole
from contracts.command_table import BY_COMMAND
from contracts.commands import RemindAssignment
from services.progress import readmodel
from services.shared import access
from services.shared.auth import Principal
from services.shared.temporal import run_update
from services.shared.web import HasRole

log = structlog.get_logger()
router = APIRouter()
A = readmodel.A
REMIND = BY_COMMAND[RemindAssignment].name
WAIT_AT_MOST = 200  # above this many, the answer is 202 and the sending goes on in the background
CONCURRENCY = 16
MAX_JOBS_KEPT = 100


@dataclass
class ReminderJob:
    job_id: str
    matched: int
    limit: int
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def status(self) -> BulkReminderStatus:
        running = self.task is not None and not self.task.done()
        broken = self.task is not None and self.task.done() and (self.task.cancelled() or self.task.exception())
        state = "running" if running else ("failed" if broken or self.failed else "done")
        first = f"{self.failed[0][0]}: {self.failed[0][1]}" if self.failed else None
        handled = self.sent + len(self.failed)
        message = (
            f"{handled} of {self.matched} assignments handled so far"
            if running
            else f"reminded {self.sent} of {self.matched} assignments"
            + (f"; {len(self.failed)} failed" if self.failed else "")
        )
        return BulkReminderStatus(
            job_id=self.job_id, state=state, matched=self.matched, limit=self.limit, sent=self.sent,
            failed=len(self.failed), first_failure=first, message=message,
        )  # fmt: skip


def jobs_of(request: Request) -> dict[str, ReminderJob]:
    jobs: dict[str, ReminderJob] = request.app.state.reminder_jobs
    return jobs


def open_matching(body: BulkReminderBody, caller: Principal) -> list[Any]:
    """The open assignments of the filter within the caller's area (a district's 督查室 chases its own)."""
    f = readmodel.StatusFilter(
        programme_id=body.programme_id, unit_id=body.unit_id, task_no=body.task_no, stage=body.stage,
        overdue=body.overdue, area=access.area(caller),
    )  # fmt: skip
    return [*readmodel.where(f), A.c.stage.notin_([Stage.COMPLETED.value, Stage.CANCELLED.value])]


async def send_all(request: Request, job: ReminderJob, ids: list[str], caller: Principal, text: str) -> None:
    temporal, settings = request.app.state.temporal, request.app.state.settings
    gate = asyncio.Semaphore(CONCURRENCY)
    key = f"bulk-{job.job_id}"

    async def one(aid: str) -> None:
        async with gate:
            cmd = RemindAssignment(actor=caller.actor(), command_id=key, message=text)
            try:
                await run_update(temporal, aid, REMIND, cmd, key, caller.actor(), settings.update_timeout)
                job.sent += 1
            except HTTPException as err:  # closed meanwhile, or Temporal away: counted, the rest go on
                job.failed.append((aid, str(err.detail)))

    await asyncio.gather(*(one(aid) for aid in ids))
    log.info("reminders.bulk_done", job_id=job.job_id, sent=job.sent, failed=len(job.failed), sub=caller.sub)


@router.post(
    "/v1/reminders",
    response_model=BulkReminderStatus,
    tags=["commands"],
    summary="催办 remind every open assignment matching a filter",
    responses={202: {"model": BulkReminderStatus, "description": "sending in the background"}},
)
async def remind_many(
    request: Request,
    body: BulkReminderBody,
    caller: Annotated[Principal, Depends(HasRole(UserRole.SUPERVISOR))],
    wait: Annotated[bool, Query(description="false: answer 202 at once and send in the background")] = True,
) -> BulkReminderStatus | JSONResponse:
    """Supervisors only, within their area. `dry_run: true` answers how many open assignments match,
    sending nothing."""
    if not body.message.strip():
        raise HTTPException(422, "a reminder needs a message")
    conds = open_matching(body, caller)
    async with request.app.state.engine.connect() as conn:
        matched = int((await conn.execute(select(func.count()).select_from(A).where(*conds))).scalar_one())
        if body.dry_run or matched > body.limit or matched == 0:
            ids: list[str] = []
        else:
            rows = await conn.execute(select(A.c.assignment_id).where(*conds).order_by(A.c.assignment_id))
            ids = [r[0] for r in rows]
    if body.dry_run:
        words = f"{matched} open assignments match; sending would remind " + (
            f"all {matched}" if matched <= body.limit else f"none: more than the limit {body.limit}"
        )
        return BulkReminderStatus(state="preview", matched=matched, limit=body.limit, message=words)
    if matched > body.limit:
        raise HTTPException(
            409,
            f"{matched} open assignments match, more than the limit {body.limit}: narrow the filter or raise `limit`",
        )
    if matched == 0:
        raise HTTPException(409, "no open assignment matches the filter; nothing was sent")
    job = ReminderJob(uuid.uuid4().hex[:12], matched, body.limit)
    jobs = jobs_of(request)
    while len(jobs) >= MAX_JOBS_KEPT:
        del jobs[next(iter(jobs))]
    jobs[job.job_id] = job
    job.task = asyncio.create_task(send_all(request, job, ids, caller, body.message), name=f"reminders {job.job_id}")
    log.info("reminders.bulk_started", job_id=job.job_id, matched=matched, sub=caller.sub)
    if not wait or matched > WAIT_AT_MOST:
        return JSONResponse(
            job.status().model_dump(mode="json"), 202, headers={"Location": f"/v1/reminders/{job.job_id}"}
        )
    await asyncio.shield(job.task)  # a client that hangs up does not stop the sending
    return job.status()


@router.get(
    "/v1/reminders/{job_id}",
    response_model=BulkReminderStatus,
    tags=["commands"],
    dependencies=[Depends(HasRole(UserRole.SUPERVISOR))],
)
async def reminders_progress(request: Request, job_id: str) -> BulkReminderStatus:
    """A bulk 催办's progress: running (with counts so far), done or failed."""
    job = jobs_of(request).get(job_id)
    if job is None:
        raise HTTPException(404, f"no reminder job {job_id} in this service (jobs are kept until it restarts)")
    return job.status()
