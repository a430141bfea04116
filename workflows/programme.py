"""ProgrammeWorkflow: the one owner of a programme's own facts (ProgrammeImported today).

Programme-level facts carry the stream key `programme:<id>` and its own sequence, which the
ledger checks like an assignment's. Making them in a workflow gives them what assignment
events have: the event is made in workflow code, recorded in history as the publishing
activity's input and published only then, so no service publishes events itself.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.commands import PROGRAMME_WORKFLOW_NAME
    from contracts.events import make_event
    from workflows.models import ProgrammeInput, ProgrammeRecorded
    from workflows.publishing import publish


@workflow.defn(name=PROGRAMME_WORKFLOW_NAME)
class ProgrammeWorkflow:
    @workflow.run
    async def run(self, input: ProgrammeInput) -> ProgrammeRecorded:
        event = make_event(
            input.imported, seq=0, occurred_at=workflow.now(), programme_id=input.programme_id, actor=input.actor
        )
        await publish([event])
        return ProgrammeRecorded(event_ids=[event.event_id])
