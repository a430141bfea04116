"""Starting workflows: one ProgrammeWorkflow per imported programme, and the dispatch of one
AssignmentWorkflow per responsibility, each started at most once.

Workflow ids are derived from the programme or assignment id and the reuse policy rejects
duplicates, so repeating an import or a dispatch (or resuming one that failed halfway) starts
only what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from contracts.base import Actor, Role
from contracts.catalog import Schedule
from contracts.commands import PROGRAMME_WORKFLOW_NAME, WORKFLOW_NAME, AssignmentSpec
from contracts.division_facts import Handover, ProgrammeRevised
from contracts.events import ProgrammeImported
from contracts.ids import programme_workflow_id, workflow_id
from contracts.working_calendar import SIGNAL_CALENDAR_PUBLISHED, PublishedCalendar
from services.shared import calendars
from workflows.models import AssignmentInput, ProgrammeInput, ProgrammeRecorded

log = structlog.get_logger()


async def record_import(
    client: Client, task_queue: str, programme_id: str, imported: ProgrammeImported, actor: Actor
) -> None:
    """Start the programme's workflow, which records and publishes ProgrammeImported, once.

    Started is enough: Temporal keeps the start, and a worker publishes the fact whenever it
    runs. A repeated import finds the run (going or done) and does nothing.
    """
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            PROGRAMME_WORKFLOW_NAME,
            ProgrammeInput(programme_id=programme_id, imported=imported, actor=actor),
            id=programme_workflow_id(programme_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=ProgrammeRecorded,
        )


async def record_revision(
    client: Client, task_queue: str, programme_id: str, imported: ProgrammeImported, revised: ProgrammeRevised,
    actor: Actor,
) -> None:  # fmt: skip
    """Record and publish a revision's ProgrammeRevised, once (one programme workflow run per revision)."""
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            PROGRAMME_WORKFLOW_NAME,
            ProgrammeInput(programme_id=programme_id, imported=imported, actor=actor, revised=revised),
            id=f"{programme_workflow_id(programme_id)}.r{revised.revision}",
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=ProgrammeRecorded,
        )


@dataclass
class DispatchOutcome:
    started: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.started + self.skipped + len(self.failed)


def specs(rows: Sequence[dict[str, Any]], schedule: Schedule) -> list[AssignmentSpec]:
    return [
        AssignmentSpec(
            programme_id=r["programme_id"],
            assignment_id=r["assignment_id"],
            task_no=r["task_no"],
            task_title=r["task_title"],
            unit_id=r["unit_id"],
            role=Role(r["role"]),
            horizon_year=r["horizon_year"],
            lead_assignment_id=r["lead_assignment_id"],
            schedule=schedule,
            handover=Handover.model_validate_json(r["handover"]) if r.get("handover") else None,
            revision=r.get("revision"),
        )
        for r in rows
    ]


def calendar_years(items: Sequence[AssignmentSpec]) -> set[int]:
    """The years whose working calendar the assignments' deadlines may touch."""
    today = dt.datetime.now(dt.UTC).year
    first = min([today, *(s.schedule.start_year for s in items)]) - 1
    return set(range(first, max([today, *(s.horizon_year for s in items)]) + 2))


async def dispatch(
    client: Client,
    task_queue: str,
    items: Sequence[AssignmentSpec],
    created_by: Actor,
    concurrency: int = 64,
    search_attributes: bool = True,
    out: DispatchOutcome | None = None,
) -> DispatchOutcome:
    """Start every item not yet started; `out` (if given) is updated as each start returns.

    Each starts on the working calendars published by then (in its input). A calendar published
    while the starts run may miss the ones started after its fan-out listed the running workflows:
    read again after the starts, a changed year is signalled to what this dispatch started.
    """
    out = out if out is not None else DispatchOutcome()
    gate = asyncio.Semaphore(concurrency)
    years = calendar_years(items)
    try:
        published = await calendars.published_calendars(client, years)
    except (RPCError, TimeoutError) as exc:
        why = f"the published working calendars could not be read: {getattr(exc, 'message', '') or 'no answer'}"
        out.failed.extend((s.assignment_id, why) for s in items)
        log.warning("dispatch.calendars_unread", reason=why)
        return out
    started: list[str] = []

    async def start(spec: AssignmentSpec) -> None:
        async with gate:
            try:
                await client.start_workflow(
                    WORKFLOW_NAME,
                    AssignmentInput(
                        spec=spec,
                        created_by=created_by,
                        search_attributes=search_attributes,
                        published_calendars=published,
                    ),  # fmt: skip
                    id=workflow_id(spec.assignment_id),
                    task_queue=task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
                out.started += 1
                started.append(spec.assignment_id)
            except WorkflowAlreadyStartedError:
                out.skipped += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported; a repeat dispatch retries it
                out.failed.append((spec.assignment_id, f"{type(exc).__name__}: {exc}"))

    # Leads first, so a cooperating unit's lead assignment exists by the time it reports.
    ordered = sorted(items, key=lambda s: (s.role != Role.LEAD, s.task_no, s.unit_id))
    await asyncio.gather(*(start(s) for s in ordered))
    if started:
        await _tell_later_calendars(client, started, years, published, gate)
    log.info("dispatch.done", started=out.started, skipped=out.skipped, failed=len(out.failed))
    return out


async def _tell_later_calendars(
    client: Client, started: list[str], years: set[int], before: list[PublishedCalendar], gate: asyncio.Semaphore
) -> None:
    """Signal the assignments just started with each calendar published since `before` was read."""
    try:
        now = await calendars.published_calendars(client, years)
    except (RPCError, TimeoutError) as exc:  # the calendar's own fan-out still lists them
        log.warning("dispatch.calendars_unread_after", reason=str(exc))
        return
    changed = [c for c in now if c not in before]
    for calendar in changed:

        async def tell(assignment_id: str, calendar: PublishedCalendar = calendar) -> None:
            async with gate:
                with contextlib.suppress(RPCError):  # finished meanwhile: nothing left to move
                    await client.get_workflow_handle(workflow_id(assignment_id)).signal(
                        SIGNAL_CALENDAR_PUBLISHED, calendar
                    )

        await asyncio.gather(*(tell(a) for a in started))
        log.info("dispatch.calendar_told", year=calendar.year, source=calendar.source, assignments=len(started))


@dataclass
class DispatchJob:
    """One programme's dispatch running (or finished) in this process, with live counts."""

    programme_id: str
    total: int
    outcome: DispatchOutcome
    task: asyncio.Task[DispatchOutcome]
    started_at: dt.datetime
    finished_at: dt.datetime | None = None

    @property
    def running(self) -> bool:
        return not self.task.done()


class DispatchJobs:
    """At most one dispatch per programme at a time: a second request joins the running one.

    Jobs live in memory only. After a restart a half-done dispatch is simply run again: starts
    are idempotent (one workflow id per assignment), so nothing is started twice.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, DispatchJob] = {}

    def get(self, programme_id: str) -> DispatchJob | None:
        return self._jobs.get(programme_id)

    def start(
        self, programme_id: str, total: int, run: Callable[[DispatchOutcome], Coroutine[Any, Any, DispatchOutcome]]
    ) -> DispatchJob:
        job = self._jobs.get(programme_id)
        if job is not None and job.running:
            return job
        outcome = DispatchOutcome()
        task = asyncio.create_task(run(outcome), name=f"dispatch {programme_id}")
        job = DispatchJob(programme_id, total, outcome, task, dt.datetime.now(dt.UTC))

        def finished(_: asyncio.Task[DispatchOutcome]) -> None:
            job.finished_at = dt.datetime.now(dt.UTC)

        task.add_done_callback(finished)
        self._jobs[programme_id] = job
        return job

    async def close(self) -> None:
        running = [j.task for j in self._jobs.values() if j.running]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
