"""The activity that hands what fell due to the programme's record workflow: signal-with-start, so
the record workflow is started by the first run that needs it and signalled by every later one."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from contracts.programme_calendar import (
    CALENDAR_RECORD_WORKFLOW_NAME,
    SIGNAL_RECORD_OCCURRENCES,
    RecordOccurrences,
    calendar_record_workflow_id,
)
from workflows.models import CalendarRecordInput

HAND_TO_RECORD = "hand_to_calendar_record"


class CalendarRecordHandoff:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=HAND_TO_RECORD)
    async def hand_over(self, request: RecordOccurrences) -> None:
        await self.client.start_workflow(
            CALENDAR_RECORD_WORKFLOW_NAME,
            CalendarRecordInput(programme_id=request.programme_id),
            id=calendar_record_workflow_id(request.programme_id),
            task_queue=activity.info().task_queue,
            start_signal=SIGNAL_RECORD_OCCURRENCES,
            start_signal_args=[request],
        )
