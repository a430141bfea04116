"""The raw halves' Temporal code: an empty workflow and a workflow whose update runs one activity.

No validation, no events, no JetStream: what the engine does by itself with the same payloads.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

EMPTY_WORKFLOW = "BenchEmpty"
UPDATE_WORKFLOW = "BenchUpdates"
UPDATE_STEP = "step"
SIGNAL_FINISH = "finish"


@activity.defn(name="bench_step")
async def bench_step(payload: dict[str, Any]) -> int:
    """One activity per update, carrying the same body the policyflow command carries."""
    return len(payload)


@workflow.defn(name=EMPTY_WORKFLOW)
class EmptyWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name=UPDATE_WORKFLOW)
class UpdateWorkflow:
    """Waits for updates; each update runs one activity and answers; `finish` ends it."""

    def __init__(self) -> None:
        self.steps = 0
        self.done = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.steps

    @workflow.update(name=UPDATE_STEP)
    async def step(self, payload: dict[str, Any]) -> int:
        await workflow.execute_activity(bench_step, payload, start_to_close_timeout=timedelta(seconds=30))
        self.steps += 1
        return self.steps

    @workflow.signal(name=SIGNAL_FINISH)
    def finish(self) -> None:
        self.done = True
