"""A command whose workflow task failed before the update was accepted is sent again
(services/shared/temporal.py); other refusals are not."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import HTTPException
from temporalio.service import RPCError, RPCStatusCode

from contracts.commands import CommandResult
from services.shared import temporal

TASK_FAILED = "Unable to perform workflow execution update due to unexpected workflow task failure."
RESULT = CommandResult(stage="planning", year=2026, event_ids=["a#000001"])


class Handle:
    """A workflow handle whose updates fail with the given errors, then succeed."""

    id = "assignment-x"

    def __init__(self, errors: list[Exception]) -> None:
        self.errors, self.calls = list(errors), list[str | None]()

    async def execute_update(self, *_: Any, id: str | None, **__: Any) -> Any:
        self.calls.append(id)
        if self.errors:
            raise self.errors.pop(0)
        return RESULT


class Client:
    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    def get_workflow_handle(self, *_: str) -> Handle:
        return self.handle


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(temporal, "UPDATE_RETRY_DELAYS", (0.0, 0.0, 0.0, 0.0))


async def test_a_failed_workflow_task_is_sent_again() -> None:
    handle = Handle([RPCError(TASK_FAILED, RPCStatusCode.FAILED_PRECONDITION, b"")] * 2)
    out = await temporal.run_update(Client(handle), "p.t01.u", "submit_plan", RESULT)  # type: ignore[arg-type]
    assert out.result == RESULT and not out.replayed and len(handle.calls) == 3


async def test_it_is_given_up_after_the_retries() -> None:
    handle = Handle([RPCError(TASK_FAILED, RPCStatusCode.FAILED_PRECONDITION, b"")] * 9)
    with pytest.raises(HTTPException) as err:
        await temporal.run_update(Client(handle), "p.t01.u", "submit_plan", RESULT)  # type: ignore[arg-type]
    assert err.value.status_code == 503 and len(handle.calls) == len(temporal.UPDATE_RETRY_DELAYS) + 1


async def test_other_errors_are_not_retried() -> None:
    handle = Handle([RPCError("namespace gone", RPCStatusCode.UNAVAILABLE, b"")])
    with pytest.raises(HTTPException) as err:
        await temporal.run_update(Client(handle), "p.t01.u", "submit_plan", RESULT)  # type: ignore[arg-type]
    assert err.value.status_code == 503 and len(handle.calls) == 1
