"""The activity that tells every running assignment of a published calendar, by signal.

It lists the running AssignmentWorkflows through Temporal's visibility and signals them, a few
dozen at a time, heartbeating the count; a retry starts the list again (a second identical
signal changes nothing in an assignment: its deadlines are already on that calendar).
"""

from __future__ import annotations

import asyncio

import structlog
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from contracts.commands import WORKFLOW_NAME
from contracts.working_calendar import SIGNAL_CALENDAR_PUBLISHED, PublishedCalendar

log = structlog.get_logger("workflows.calendar_fanout")
SIGNAL_ASSIGNMENTS = "signal_assignments"
CONCURRENCY = 64


class FanOutRequest(BaseModel):
    calendar: PublishedCalendar


class FanOutResult(BaseModel):
    signalled: int = 0
    failed: int = 0


class CalendarFanOut:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=SIGNAL_ASSIGNMENTS)
    async def signal_assignments(self, request: FanOutRequest) -> FanOutResult:
        out = FanOutResult()
        gate = asyncio.Semaphore(CONCURRENCY)
        query = f"WorkflowType = '{WORKFLOW_NAME}' AND ExecutionStatus = 'Running'"

        async def one(workflow_id: str) -> None:
            async with gate:
                try:
                    await self.client.get_workflow_handle(workflow_id).signal(
                        SIGNAL_CALENDAR_PUBLISHED, request.calendar
                    )
                    out.signalled += 1
                except RPCError as err:  # finished meanwhile: nothing left to move
                    out.failed += 1
                    log.info("calendar.signal_failed", workflow_id=workflow_id, reason=err.message)
                activity.heartbeat(out.signalled)

        tasks: list[asyncio.Task[None]] = []
        async for wf in self.client.list_workflows(query):
            tasks.append(asyncio.create_task(one(wf.id)))
            if len(tasks) >= 1000:
                await asyncio.gather(*tasks)
                tasks.clear()
        await asyncio.gather(*tasks)
        log.info("calendar.signalled", year=request.calendar.year, signalled=out.signalled, failed=out.failed)
        return out
