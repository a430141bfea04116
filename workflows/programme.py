"""ProgrammeWorkflow: the one owner of a programme's own facts: ProgrammeImported (seq 0) and each
ProgrammeRevised (seq = the revision's number, one workflow run per revision).

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
        fact = input.revised or input.imported
        seq = input.revised.revision if input.revised is not None else 0
        event = make_event(
            fact, seq=seq, occurred_at=workflow.now(), programme_id=input.programme_id, actor=input.actor
        )
        await publish([event])
        return ProgrammeRecorded(event_ids=[event.event_id])
