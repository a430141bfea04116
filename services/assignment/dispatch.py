"""Dispatch: one AssignmentWorkflow per responsibility, started at most once each.

The workflow id is derived from the assignment id and the reuse policy rejects duplicates,
so repeating a dispatch (or resuming one that failed halfway) starts only what is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.base import Actor, Role
from contracts.catalog import Schedule
from contracts.commands import WORKFLOW_NAME, AssignmentSpec
from contracts.ids import workflow_id
from workflows.models import AssignmentInput

log = structlog.get_logger()


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
        )
        for r in rows
    ]


async def dispatch(
    client: Client,
    task_queue: str,
    items: Sequence[AssignmentSpec],
    created_by: Actor,
    concurrency: int = 64,
    search_attributes: bool = True,
) -> DispatchOutcome:
    out = DispatchOutcome()
    gate = asyncio.Semaphore(concurrency)

    async def start(spec: AssignmentSpec) -> None:
        async with gate:
            try:
                await client.start_workflow(
                    WORKFLOW_NAME,
                    AssignmentInput(spec=spec, created_by=created_by, search_attributes=search_attributes),
                    id=workflow_id(spec.assignment_id),
                    task_queue=task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
                out.started += 1
            except WorkflowAlreadyStartedError:
                out.skipped += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported; a repeat dispatch retries it
                out.failed.append((spec.assignment_id, f"{type(exc).__name__}: {exc}"))

    # Leads first, so a cooperating unit's lead assignment exists by the time it reports.
    ordered = sorted(items, key=lambda s: (s.role != Role.LEAD, s.task_no, s.unit_id))
    await asyncio.gather(*(start(s) for s in ordered))
    log.info("dispatch.done", started=out.started, skipped=out.skipped, failed=len(out.failed))
    return out
