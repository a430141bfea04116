"""Who may do what: every route of the four services and every command of the command table, asked
by every kind of caller (tests/unit/authz_world.py), with the answer each must get.

A caller outside a route's rule gets 403 (401 without a token); one inside gets the route's own
answer. Commands and writes are sent with a body the route refuses (422) where they have one, so an
allowed caller shows it got past the authorisation and nothing is done; a refused one must not have
reached the (stand-in) workflow service. A route without a rule here fails `test_every_route_has_a_rule`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from contracts.base import UserRole
from contracts.command_table import COMMANDS
from services.assignment.app import create_app as assignment_app
from services.audit.app import create_app as audit_app
from services.notify.app import create_app as notify_app
from services.progress.app import create_app as progress_app
from tests.unit.authz_world import CALLERS, P1, TARGET, World, api_routes, build

ALL = frozenset(CALLERS)
TOKENS = ALL - {"anon"}
LISTERS = TOKENS - {"admin"}  # lists narrowed to the caller's area
READERS_OF_TARGET = frozenset({"own", "lead", "district_in", "task_sup", "city", "verifier", "auditor"})
SUPERVISORS = frozenset({"district_in", "district_out", "task_sup", "city"})
TARGET_SUPERVISORS = frozenset({"district_in", "task_sup", "city"})
TASK_READERS = frozenset({"lead", "district_in", "task_sup", "city", "verifier", "auditor"})
AUDIT_READERS = SUPERVISORS | {"auditor"}
LEDGER_WIDE = frozenset({"city", "auditor"})
UNIT_READERS = frozenset({"own", "district_in", "task_sup", "city", "verifier", "auditor"})
UNIT_KEEPERS = frozenset({"own", "district_in", "city"})  # the unit, and supervisors holding the unit
ADMIN = frozenset({"admin"})
CITY = frozenset({"city"})
NOT_SENT = 0  # the route needs a live NATS or Temporal: only its refusals are asked here
INVALID = {"not_a_field": 1}  # refused by every body (extra fields are forbidden): 422 once allowed
SENDERS = {
    UserRole.DEPARTMENT: {"own"},
    UserRole.SUPERVISOR: set(TARGET_SUPERVISORS),
    UserRole.VERIFIER: {"verifier"},
    UserRole.ADMIN: {"admin"},
}


@dataclass(frozen=True)
class Case:
    service: str
    method: str
    route: str  # the route's path as declared
    allowed: frozenset[str]
    ok: int  # the answer an allowed caller gets
    path: str = ""  # the concrete path (default: the route)
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] | None = None  # a form post: the caller's token also in the field `token` (sign-in)
    others: dict[str, int] = field(default_factory=dict)  # callers with another answer than 403
    anon: int = 401

    def expected(self, caller: str) -> int:
        if caller in self.others:
            return self.others[caller]
        if caller == "anon" and caller not in self.allowed:
            return self.anon
        return self.ok if caller in self.allowed else 403


def commands() -> list[Case]:
    """One case per row of the command table: its senders, within the target's area."""
    cases = []
    for row in COMMANDS:
        allowed = frozenset().union(*(SENDERS[r] for r in row.senders))
        route = f"/v1/assignments/{{assignment_id}}{row.path}"
        path = route.replace("{assignment_id}", TARGET).replace("{year}", "2026").replace("{n}", "1")
        body, ok = (INVALID, 422) if row.body is not None else (None, 200)
        cases.append(Case("progress", "POST", route, allowed, ok, path, json=body))
    return cases


def public(service: str, *routes: str) -> list[Case]:
    return [Case(service, "GET", r, ALL, 200) for r in routes]


EVIDENCE = f"/v1/assignments/{TARGET}/evidence"
SHA = "0" * 64
CASES: list[Case] = [
    *commands(),
    # ---- progress: reads --------------------------------------------------------------------------
    Case("progress", "GET", "/v1/assignments/{assignment_id}", READERS_OF_TARGET, 200, f"/v1/assignments/{TARGET}",
         params={"source": "read_model"}),
    Case("progress", "GET", "/v1/status", LISTERS, 200),
    Case("progress", "GET", "/v1/status/summary", LISTERS, 200),
    Case("progress", "GET", "/v1/programmes/{programme_id}/indicators", LISTERS, 200,
         f"/v1/programmes/{P1}/indicators"),
    Case("progress", "GET", "/v1/programmes/{programme_id}/scores", LISTERS, 200, f"/v1/programmes/{P1}/scores",
         params={"year": 2026}),
    Case("progress", "GET", "/v1/lead/tasks", LISTERS, 200),
    Case("progress", "GET", "/v1/lead/tasks/{programme_id}/{task_no}", TASK_READERS, 200, f"/v1/lead/tasks/{P1}/1"),
    Case("progress", "POST", "/v1/assignments/{assignment_id}/evidence", frozenset({"own"}), 422, EVIDENCE),
    Case("progress", "GET", "/v1/assignments/{assignment_id}/evidence", READERS_OF_TARGET, 200, EVIDENCE),
    Case("progress", "GET", "/v1/assignments/{assignment_id}/evidence/{sha256}", READERS_OF_TARGET, 404,
         f"{EVIDENCE}/{SHA}"),
    Case("progress", "GET", "/v1/calendars/{year}", TOKENS, 200, "/v1/calendars/2027"),
    # ---- progress: writes -------------------------------------------------------------------------
    Case("progress", "POST", "/v1/reminders", SUPERVISORS, 422, json=INVALID),
    Case("progress", "GET", "/v1/reminders/{job_id}", SUPERVISORS, 404, "/v1/reminders/no-such-job"),
    Case("progress", "PUT", "/v1/calendars/{year}", ADMIN, 422, "/v1/calendars/2027", json=INVALID),
    Case("progress", "POST", "/v1/admin/rebuild-read-models", ADMIN, NOT_SENT),
    Case("progress", "GET", "/v1/admin/check-read-models", ADMIN, NOT_SENT),
    # ---- progress: pages (JSON answers: no Accept: text/html) --------------------------------------
    Case("progress", "GET", "/dashboard", SUPERVISORS, 200),
    Case("progress", "GET", "/dashboard/units", SUPERVISORS, 200),
    Case("progress", "GET", "/dashboard/indicators", SUPERVISORS, 200),
    Case("progress", "GET", "/dashboard/export/{view}", SUPERVISORS, 200, "/dashboard/export/status",
         params={"programme_id": P1}),
    Case("progress", "GET", "/dashboard/assignments/{assignment_id}", TARGET_SUPERVISORS, 200,
         f"/dashboard/assignments/{TARGET}"),
    Case("progress", "GET", "/dashboard/bulletin", SUPERVISORS, 200),
    Case("progress", "GET", "/workbench", TOKENS, 200, anon=303),
    Case("progress", "GET", "/workbench/assignments/{assignment_id}", READERS_OF_TARGET, 200,
         f"/workbench/assignments/{TARGET}", anon=303),
    Case("progress", "POST", "/workbench/assignments/{assignment_id}/{name}", frozenset({"own"}), 422,
         f"/workbench/assignments/{TARGET}/submit_plan", anon=303, form={},
         others=dict.fromkeys(READERS_OF_TARGET - {"own"}, 409)),  # may read, but has no such form
    Case("progress", "GET", "/workbench/assignments/{assignment_id}/evidence/{sha256}", READERS_OF_TARGET, 404,
         f"/workbench/assignments/{TARGET}/evidence/{SHA}", anon=303),
    Case("progress", "GET", "/workbench/lead/{programme_id}/{task_no}", TASK_READERS, 200, f"/workbench/lead/{P1}/1",
         anon=303),
    Case("progress", "GET", "/v1/programmes/{programme_id}/bulletins/{period}", LISTERS, 422,
         f"/v1/programmes/{P1}/bulletins/2026-Q9"),  # a period that is none: refused after the caller
    Case("progress", "GET", "/v1/programmes/{programme_id}/calendar", TOKENS, 200, f"/v1/programmes/{P1}/calendar"),
    # ---- progress: signing in (by name and password or a provider, never by a token: the same for all)
    *public("progress", "/livez", "/healthz", "/readyz", "/dashboard/login", "/workbench/login", "/v1/auth/config"),
    Case("progress", "POST", "/dashboard/login", ALL, 403, form={}),  # the form's CSRF token is missing
    Case("progress", "POST", "/workbench/login", ALL, 403, form={}),
    Case("progress", "POST", "/signout", ALL, 303, form={}),
    Case("progress", "POST", "/v1/auth/token", ALL, 422, json=INVALID),
    Case("progress", "GET", "/auth/oidc/start", ALL, 404),  # no provider set
    Case("progress", "GET", "/auth/oidc/callback", ALL, 404),
    # ---- assignment service -----------------------------------------------------------------------
    Case("assignment", "POST", "/v1/programmes", ADMIN, 422, json=INVALID),
    Case("assignment", "GET", "/v1/programmes/{programme_id}", TOKENS, 200, f"/v1/programmes/{P1}"),
    Case("assignment", "POST", "/v1/programmes/{programme_id}/dispatch", ADMIN, 422, f"/v1/programmes/{P1}/dispatch",
         params={"wait": "maybe"}),
    Case("assignment", "GET", "/v1/programmes/{programme_id}/dispatch", TOKENS, 200, f"/v1/programmes/{P1}/dispatch"),
    Case("assignment", "GET", "/v1/units/{unit_id}/assignments", UNIT_READERS, 200, "/v1/units/yuzhong/assignments"),
    Case("assignment", "POST", "/v1/assignments/{assignment_id}/reassign", TARGET_SUPERVISORS, 422,
         f"/v1/assignments/{TARGET}/reassign", json={"to_unit": "atlantis", "reason": "职能调整"}),
    Case("assignment", "POST", "/v1/programmes/{programme_id}/revisions", ADMIN, 422, f"/v1/programmes/{P1}/revisions",
         json=INVALID),
    Case("assignment", "GET", "/v1/programmes/{programme_id}/revisions/{n}", TOKENS, 404,
         f"/v1/programmes/{P1}/revisions/1"),
    Case("assignment", "POST", "/v1/programmes/{programme_id}/tasks/{task_no}/units", ADMIN, 422,
         f"/v1/programmes/{P1}/tasks/1/units", json=INVALID),
    Case("assignment", "GET", "/v1/programmes/{programme_id}/schedule", ADMIN | SUPERVISORS | {"auditor"}, 200,
         f"/v1/programmes/{P1}/schedule"),
    Case("assignment", "PUT", "/v1/programmes/{programme_id}/schedule", ADMIN, NOT_SENT,
         f"/v1/programmes/{P1}/schedule"),
    Case("assignment", "POST", "/v1/programmes/{programme_id}/schedule/pause", ADMIN | CITY, 422,
         f"/v1/programmes/{P1}/schedule/pause", json=INVALID),
    Case("assignment", "POST", "/v1/programmes/{programme_id}/schedule/unpause", ADMIN | CITY, 422,
         f"/v1/programmes/{P1}/schedule/unpause", json=INVALID),
    Case("assignment", "POST", "/v1/programmes/{programme_id}/schedule/trigger", ADMIN | CITY, NOT_SENT,
         f"/v1/programmes/{P1}/schedule/trigger"),
    Case("assignment", "POST", "/v1/programmes/{programme_id}/schedule/backfill", ADMIN | CITY, 422,
         f"/v1/programmes/{P1}/schedule/backfill", json=INVALID),
    *public("assignment", "/livez", "/healthz", "/v1/units"),
    # ---- audit service ----------------------------------------------------------------------------
    Case("audit", "GET", "/v1/audit/events", AUDIT_READERS, 200),
    Case("audit", "GET", "/v1/audit/assignments/{assignment_id}/history", TARGET_SUPERVISORS | {"auditor"}, 200,
         f"/v1/audit/assignments/{TARGET}/history"),
    Case("audit", "GET", "/v1/audit/replay", AUDIT_READERS, 200, params={"as_of": "2030-01-01T00:00:00Z"}),
    Case("audit", "GET", "/v1/audit/verify", AUDIT_READERS, 200),
    Case("audit", "POST", "/v1/audit/checkpoints", SUPERVISORS, 201),
    Case("audit", "GET", "/v1/audit/checkpoints/latest", AUDIT_READERS, 200),
    Case("audit", "GET", "/v1/audit/checkpoints", AUDIT_READERS, 200),
    Case("audit", "GET", "/v1/audit/proofs/inclusion", TARGET_SUPERVISORS | {"auditor"}, 200,
         params={"event_id": f"{TARGET}#000000"}),
    Case("audit", "GET", "/v1/audit/proofs/consistency", AUDIT_READERS, 422, params={"from": 10**9}),
    Case("audit", "GET", "/v1/audit/gaps", LEDGER_WIDE, 200),
    Case("audit", "GET", "/v1/audit/rejects", LEDGER_WIDE, 200),
    Case("audit", "GET", "/v1/audit/access", frozenset({"auditor"}), 200),
    Case("audit", "GET", "/v1/audit/programmes/{programme_id}/indicators", AUDIT_READERS, 200,
         f"/v1/audit/programmes/{P1}/indicators"),
    Case("audit", "GET", "/v1/audit/programmes/{programme_id}/scores", AUDIT_READERS, 200,
         f"/v1/audit/programmes/{P1}/scores", params={"year": 2026}),
    *public("audit", "/livez", "/healthz", "/readyz"),
    # ---- notification service ---------------------------------------------------------------------
    Case("notify", "PUT", "/v1/units/{unit_id}/subscriptions", UNIT_KEEPERS, 200, "/v1/units/yuzhong/subscriptions",
         json={"emails": [], "webhooks": []}),
    Case("notify", "GET", "/v1/units/{unit_id}/subscriptions", UNIT_KEEPERS, 200, "/v1/units/yuzhong/subscriptions"),
    Case("notify", "GET", "/v1/units/{unit_id}/notifications", UNIT_KEEPERS, 200, "/v1/units/yuzhong/notifications"),
    Case("notify", "PUT", "/v1/supervisors/subscriptions", SUPERVISORS, 200, json={"emails": [], "webhooks": []}),
    Case("notify", "GET", "/v1/supervisors/subscriptions", SUPERVISORS, 200),
    Case("notify", "GET", "/v1/notifications", CITY, 200),
    Case("notify", "GET", "/v1/notifications/failed", CITY, 200),
    Case("notify", "GET", "/v1/notifications/rejects", CITY, 200),
    Case("notify", "POST", "/v1/notifications/{delivery_id}/retry", CITY, 404, "/v1/notifications/none/retry"),
    *public("notify", "/livez", "/healthz", "/asyncapi.json"),
]  # fmt: skip


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async for w in build(tmp_path_factory.mktemp("authz")):
        yield w


def test_every_route_has_a_rule() -> None:
    """A route added without a rule here (or a rule for a route that is gone) fails."""
    declared = {
        (service, method, r.path)
        for service, make in (
            ("progress", progress_app),
            ("assignment", assignment_app),
            ("audit", audit_app),
            ("notify", notify_app),
        )  # fmt: skip
        for r in api_routes(make())
        for method in r.methods or ()
    }
    ruled = {(c.service, c.method, c.route) for c in CASES}
    assert len(ruled) == len(CASES), "a route has two rules"
    assert declared - ruled == set(), "routes without a rule in the authorisation table"
    assert ruled - declared == set(), "rules for routes that do not exist"


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.service}:{c.method}:{c.route}")
async def test_each_caller_gets_the_rules_answer(world: World, case: Case) -> None:
    client = world.clients[case.service]
    answers = {}
    for caller in CALLERS:
        headers = world.headers(caller)
        if case.ok == NOT_SENT and caller in case.allowed:
            answers[caller] = NOT_SENT
            continue
        sent_before = len(world.temporal.sent)
        kw: dict[str, Any] = {"params": case.params}
        if case.form is not None:
            token = headers.get("Authorization", "").removeprefix("Bearer ")
            kw["data"] = {"token": token}
        elif case.json is not None:
            kw["json"] = case.json
        r = await client.request(case.method, case.path or case.route, headers=headers, **kw)
        answers[caller] = r.status_code
        if r.status_code in (401, 403):
            assert len(world.temporal.sent) == sent_before, f"{caller}: refused, yet the workflow was sent a command"
    wanted = {caller: case.expected(caller) for caller in CALLERS}
    assert answers == wanted


async def test_a_reassignment_stays_inside_the_supervisors_area(world: World) -> None:
    """转办 moves work to a unit the supervisor could act on too: 渝中区督查室 may not hand yuzhong's
    assignment to wanzhou; a city-wide supervisor gets past the check (and on to the stand-in)."""
    client, body = world.clients["assignment"], {"to_unit": "wanzhou", "reason": "职能调整"}
    sent = len(world.temporal.sent)
    r = await client.post(f"/v1/assignments/{TARGET}/reassign", headers=world.headers("district_in"), json=body)
    assert r.status_code == 403 and "wanzhou" in r.json()["detail"], r.text
    assert len(world.temporal.sent) == sent
    r = await client.post(f"/v1/assignments/{TARGET}/reassign", headers=world.headers("city"), json=body)
    assert r.status_code != 403, r.text


async def test_scores_and_indicators_show_a_supervisors_area_only(world: World) -> None:
    """A 督查室 sees its units' rows (their ranks among every unit), a task's supervisor the units of
    its task; the city sees them all; the same in the exports, which go through the same answer."""
    client = world.clients["progress"]

    async def units(caller: str, view: str) -> set[str]:
        r = await client.get(f"/v1/programmes/{P1}/{view}", params={"year": 2026}, headers=world.headers(caller))
        assert r.status_code == 200, r.text
        body = r.json()
        if view == "scores":
            return {u["unit_id"] for u in body["units"]}
        return {u["unit_id"] for i in body["indicators"] for y in i["years"] for u in y["units"]}

    everyone = await units("city", "scores")
    assert {"yuzhong", "wanzhou"} <= everyone
    assert await units("district_in", "scores") == {"yuzhong"}
    task_units = await units("task_sup", "scores")
    assert "yuzhong" in task_units and "wanzhou" not in task_units and task_units < everyone
    assert await units("district_in", "indicators") <= {"yuzhong"}
    sheet = await client.get(f"/v1/programmes/{P1}/scores", params={"year": 2026, "format": "csv"},
                             headers=world.headers("district_in"))  # fmt: skip
    assert sheet.status_code == 200 and "wanzhou" not in sheet.text and "yuzhong" in sheet.text
