"""The Policyflow* search attributes an assignment's run keeps up to date (registered on the
dev server by deploy/local), so operators can find runs by programme, unit, stage or overdue level."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from contracts.fold import AssignmentState

SA_PROGRAMME = SearchAttributeKey.for_keyword("PolicyflowProgramme")
SA_TASK = SearchAttributeKey.for_int("PolicyflowTaskNo")
SA_UNIT = SearchAttributeKey.for_keyword("PolicyflowUnit")
SA_STAGE = SearchAttributeKey.for_keyword("PolicyflowStage")
SA_YEAR = SearchAttributeKey.for_int("PolicyflowYear")
SA_OVERDUE = SearchAttributeKey.for_keyword("PolicyflowOverdue")


def sync(s: AssignmentState) -> None:
    """Upsert the attributes whose values changed (called from workflow code only)."""
    wanted: list[SearchAttributeUpdate[Any]] = [
        SA_PROGRAMME.value_set(s.programme_id),
        SA_TASK.value_set(s.task_no),
        SA_UNIT.value_set(s.unit_id),
        SA_STAGE.value_set(s.stage.value),
        SA_YEAR.value_set(s.year),
        SA_OVERDUE.value_set(s.overdue_level.value),
    ]
    current = workflow.info().typed_search_attributes
    changed = [u for u in wanted if current.get(u.key) != u.value]
    if changed:
        workflow.upsert_search_attributes(changed)
