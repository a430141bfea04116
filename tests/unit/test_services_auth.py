"""Who may do what, and how Temporal's answers become HTTP answers: no servers, a stand-in Temporal client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from contracts.base import Actor, UserRole
from contracts.command_table import COMMANDS, CommandRow
from contracts.commands import CommandResult
from contracts.fold import AssignmentState
from services.progress.app import create_app
from services.progress.settings import ProgressSettings
from services.shared.access import Area
from services.shared.auth import load_public_key
from services.shared.temporal import http_error, update_id
from tests.e2e.support import auth

AID = "p1.t03.yuzhong"
BODIES: dict[str, Any] = {
    "accept": None,
    "plans": {"year": 2026, "milestones": [{"title": "m", "due": "2026-06-30"}]},
    "plans/2026/review": {"decision": "approve", "comment": "ok"},
    "reports": {"period": "2026-Q1", "percent": 5, "narrative": "n"},
    "verification-requests": None,
    "verification": {"decision": "pass"},
    "summaries": {"year": 2026, "text": "汇总"},
    "self-evaluations": {"year": 2030, "text": "自评", "score": 90},
    "cancel": {"reason": "r"},
    "extensions": {"deadline_key": "report:2026-Q1", "new_due": "2026-05-08", "reason": "r"},
    "extensions/1/decision": {"decision": "approve"},
    "reminders": {"message": "m"},
    "closure": {"reason": "r"},
}
# path -> who gets through (everyone else: 403). "own" is the yuzhong department.
ALLOWED = {
    "accept": {"own"},
    "plans": {"own"},
    "plans/2026/review": {"supervisor"},
    "reports": {"own"},
    "verification-requests": {"own"},
    "verification": {"verifier", "supervisor"},
    "summaries": {"own"},
    "self-evaluations": {"own"},
    "cancel": {"supervisor"},
    "extensions": {"own"},
    "extensions/1/decision": {"supervisor"},
    "reminders": {"supervisor"},
    "closure": {"supervisor"},
}


class FakeHandle:
    def __init__(self, client: FakeClient, wid: str) -> None:
        self.client, self.wid = client, wid

    async def execute_update(self, name: str, cmd: Any, id: str | None = None, **_: Any) -> Any:
        self.client.sent.append((self.wid, name, cmd, id))
        result = CommandResult(event_ids=[f"{AID}#{len(self.client.sent):06d}"], stage="planning", year=2026)
        if id:
            self.client.done[id] = result
        return result

    def get_update_handle(self, id: str, **_: Any) -> Any:
        client = self.client

        class Update:
            async def result(self) -> CommandResult:
                if id not in client.done:
                    raise RPCError(f'update "{id}" not found', RPCStatusCode.NOT_FOUND, b"")
                return client.done[id]

        return Update()

    async def query(self, _name: str, **_: Any) -> AssignmentState:
        """The workflow's own record: the unit comes from it, not from the id."""
        await self.describe()
        return AssignmentState(assignment_id=AID, programme_id="p1", task_no=3, unit_id="yuzhong")

    async def describe(self) -> None:
        """Only AID's workflow was started."""
        if self.wid != f"assignment-{AID}":
            raise RPCError(f"workflow not found for ID: {self.wid}", RPCStatusCode.NOT_FOUND, b"")


class FakeClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any, str | None]] = []
        self.done: dict[str, CommandResult] = {}

    def get_workflow_handle(self, wid: str) -> FakeHandle:
        return FakeHandle(self, wid)


class EmptyReadModel:
    """A read model that has not caught up yet: the workflow is asked."""

    async def exists(self, _assignment_id: str) -> bool:
        return False

    async def record(self, _assignment_id: str) -> None:
        return None

    async def ids_like(self, _assignment_id: str, area: Area | None = None) -> list[str]:
        return [AID] if area is None or area.has_unit("yuzhong") else []

    async def lead_units(self, _programme_id: str, _task_no: int) -> frozenset[str]:
        return frozenset()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, FakeClient, Path]]:
    keys = tmp_path / "keys"
    settings = ProgressSettings(key_dir=keys, var_dir=tmp_path)
    app = create_app(settings)
    fake = FakeClient()
    # The lifespan (Temporal, NATS, database) is not run: the state it would set is set here.
    app.state.public_key = load_public_key(keys)
    app.state.settings = settings
    app.state.temporal = fake
    app.state.status_reader = EmptyReadModel()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://progress") as c:
        yield c, fake, keys


CALLERS = {
    "own": ("department", "yuzhong"),
    "other": ("department", "wanzhou"),
    "supervisor": ("supervisor", None),
    "verifier": ("verifier", None),
    "auditor": ("auditor", None),
}


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("caller", list(CALLERS))
async def test_role_matrix(api: tuple[httpx.AsyncClient, FakeClient, Path], path: str, caller: str) -> None:
    c, fake, keys = api
    role, unit = CALLERS[caller]
    r = await c.post(f"/v1/assignments/{AID}/{path}", json=BODIES[path], headers=auth(keys, role, unit))
    if caller in ALLOWED[path]:
        assert r.status_code == 200, r.text
        [(wid, _, cmd, _)] = fake.sent
        assert wid == f"assignment-{AID}"
        assert cmd.actor == Actor(sub=f"{role}:{unit}" if unit else role, role=UserRole(role), unit_id=unit)
    else:
        assert r.status_code == 403, r.text
        assert fake.sent == []  # refused before Temporal hears of it


async def test_refusals_come_before_the_body_is_judged(api: tuple[httpx.AsyncClient, FakeClient, Path]) -> None:
    c, _, keys = api
    r = await c.post(f"/v1/assignments/{AID}/reports", json={"percent": 500}, headers=auth(keys, "auditor"))
    assert r.status_code == 403
    r = await c.post(f"/v1/assignments/{AID}/reports", json={"percent": 500})
    assert r.status_code == 401
    r = await c.post("/v1/assignments/garbage/reports", json={"percent": 500}, headers=auth(keys, "department", "x1"))
    assert r.status_code == 404  # a malformed id names no unit: not found, not forbidden
    r = await c.post(f"/v1/assignments/{AID}/plans/1900/review", json={}, headers=auth(keys, "department", "yuzhong"))
    assert r.status_code == 403  # the year in the path is judged with the body, after the sender


async def test_an_id_no_workflow_has_is_404_with_the_ids_meant(api: tuple[httpx.AsyncClient, FakeClient, Path]) -> None:
    c, fake, keys = api
    typo = "p1.t03.yuzhog"
    for role, unit in (("department", "yuzhong"), ("supervisor", None)):
        r = await c.get(f"/v1/assignments/{typo}", headers=auth(keys, role, unit))
        assert r.status_code == 404 and r.json()["detail"] == f"no assignment {typo}; did you mean {AID}?"
    # another unit is told no more than that the id names nothing, and is not shown yuzhong's ids
    r = await c.post(f"/v1/assignments/{typo}/accept", headers=auth(keys, "department", "wanzhou"))
    assert r.status_code == 404 and AID not in r.text and "policyflow inbox" in r.json()["detail"]
    assert fake.sent == []


async def test_each_command_reaches_its_update_with_the_path_and_body_fields(
    api: tuple[httpx.AsyncClient, FakeClient, Path],
) -> None:
    c, fake, keys = api
    for (path, body), row in zip(BODIES.items(), COMMANDS, strict=True):
        assert f"/{path}" == row.path.replace("{year}", "2026").replace("{n}", "1")
        role, unit = CALLERS[sorted(ALLOWED[path])[0]]
        headers = {**auth(keys, role, unit), "Idempotency-Key": f"k-{row.name}"}
        assert (await c.post(f"/v1/assignments/{AID}/{path}", json=body, headers=headers)).status_code == 200
    sent = {name: cmd for _, name, cmd, _ in fake.sent}
    assert list(sent) == [row.name for row in COMMANDS]
    for row in COMMANDS:
        assert type(sent[row.name]) is row.command and sent[row.name].command_id == f"k-{row.name}"
    assert sent["review_plan"].year == 2026 and sent["review_plan"].decision == "approve"
    assert sent["report_progress"].narrative == "n" and sent["request_verification"].note == ""


@pytest.mark.parametrize("row", COMMANDS, ids=lambda row: row.name)
def test_a_body_and_the_path_carry_the_commands_fields(row: CommandRow) -> None:
    """What the sender says (the body and the path) and who says it make up the whole command."""
    body_fields = set(row.body.model_fields) if row.body else set()
    assert body_fields.isdisjoint(row.path_fields)
    assert body_fields | set(row.path_fields) | {"actor", "command_id"} == set(row.command.model_fields)
    assert row.body_required == (row.body is not None and any(f.is_required() for f in row.body.model_fields.values()))


async def test_a_command_too_large_for_one_event_is_refused(api: tuple[httpx.AsyncClient, FakeClient, Path]) -> None:
    c, fake, keys = api
    # Each field within its limit; as JSON (a NUL is written \u0000) the whole is over the stream's max_msg_size.
    nuls = [{"name": "\u0000" * 300, "sha256": "0" * 64, "size": 1}] * 100
    report = {**BODIES["reports"], "narrative": "\u0000" * 20_000, "evidence": nuls}
    r = await c.post(f"/v1/assignments/{AID}/reports", json=report, headers=auth(keys, "department", "yuzhong"))
    assert r.status_code == 413 and "a progress report would be recorded as an event" in r.json()["detail"]
    assert fake.sent == []


async def test_idempotency_key_makes_one_command(api: tuple[httpx.AsyncClient, FakeClient, Path]) -> None:
    c, fake, keys = api
    headers = {**auth(keys, "department", "yuzhong"), "Idempotency-Key": "k-1"}
    first = await c.post(f"/v1/assignments/{AID}/reports", json=BODIES["reports"], headers=headers)
    again = await c.post(f"/v1/assignments/{AID}/reports", json=BODIES["reports"], headers=headers)
    assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
    assert first.json()["event_ids"] == again.json()["event_ids"]
    [(_, name, cmd, uid)] = fake.sent
    assert name == "report_progress" and cmd.command_id == "k-1"
    assert uid == update_id("report_progress", cmd.actor, "k-1")
    other = await c.post(f"/v1/assignments/{AID}/plans", json=BODIES["plans"], headers=headers)
    assert other.json()["replayed"] is False  # the same key on another command is another command


def test_update_ids_are_scoped_by_caller_and_command() -> None:
    a = Actor(sub="department:yuzhong", role=UserRole.DEPARTMENT, unit_id="yuzhong")
    b = Actor(sub="department:wanzhou", role=UserRole.DEPARTMENT, unit_id="wanzhou")
    assert update_id("report_progress", a, "k") == update_id("report_progress", a, "k")
    assert update_id("report_progress", a, "k") != update_id("report_progress", b, "k")
    assert update_id("report_progress", a, "k") != update_id("submit_plan", a, "k")


def test_temporal_errors_map_to_http() -> None:
    rejected = WorkflowUpdateFailedError(ApplicationError("annual plan for 2027 is not open: stage is planning"))
    assert (http_error(rejected, AID).status_code, http_error(rejected, AID).detail) == (
        409,
        "annual plan for 2027 is not open: stage is planning",
    )
    missing = RPCError("workflow not found for ID: x", RPCStatusCode.NOT_FOUND, b"")
    assert http_error(missing, AID).status_code == 404
    closed = RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b"")
    assert http_error(closed, AID).status_code == 409
    assert http_error(WorkflowUpdateRPCTimeoutOrCancelledError(), AID).status_code == 504
    assert http_error(RPCError("down", RPCStatusCode.UNAVAILABLE, b""), AID).status_code == 503
    with pytest.raises(KeyError):
        http_error(KeyError("not a Temporal error"), AID)
