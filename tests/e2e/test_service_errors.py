"""Every refusal the services give, over real HTTP against the real stack: 401, 403, 404, 409, 422.

Each answer is checked for its status and that it says why; none is a 500.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from contracts.base import UserRole
from contracts.ids import assignment_id
from services.shared.auth import issue_token
from tests.e2e.support import Stack, running_stack, small_programme, stream_events
from tests.support.clock import china_today

YEAR = china_today().year  # the dev server's year; Q1 below has begun whenever in it the tests run
PLAN = {"year": YEAR, "milestones": [{"title": "m", "due": f"{YEAR}-12-01"}], "indicators": []}
REPORT = {"period": f"{YEAR}-Q1", "percent": 10, "narrative": "n"}


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-err-{uuid.uuid4().hex[:8]}"
    async with running_stack(tmp_path_factory.mktemp("err"), nats_url, temporal_client, temporal_address, tq) as s:
        yield s


@pytest.fixture(scope="module")
async def world(stack: Stack) -> dict[str, Any]:
    body = small_programme(start_year=YEAR)
    admin = stack.headers("admin")
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(f"{stack.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=admin)
        assert r.status_code == 200, r.text
        r = await c.post(f"{stack.assignment_url}/v1/programmes/{body.programme_id}/dispatch", headers=admin)
        assert r.status_code == 200, r.text
    pid = body.programme_id
    return {"pid": pid, "body": body, "yz": assignment_id(pid, 2, "yuzhong"), "wz": assignment_id(pid, 2, "wanzhou")}


@pytest.fixture
async def c() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def refused(r: httpx.Response, status: int, needle: str = "") -> None:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail, r.text
    assert needle.lower() in detail.lower(), detail


async def test_401_without_or_with_a_bad_token(stack: Stack, world: dict[str, Any], c: httpx.AsyncClient) -> None:
    a, p, yz = stack.assignment_url, stack.progress_url, world["yz"]
    expired = issue_token(stack.key_dir, UserRole.SUPERVISOR, ttl=dt.timedelta(seconds=-60))
    foreign = issue_token(stack.key_dir / "other", UserRole.SUPERVISOR)  # signed with another key
    for headers in (
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {foreign}"},
    ):
        refused(await c.get(f"{a}/v1/units/yuzhong/assignments", headers=headers), 401)
        refused(await c.get(f"{p}/v1/status", headers=headers), 401)
        refused(await c.get(f"{p}/v1/assignments/{yz}", headers=headers), 401)
        refused(await c.post(f"{p}/v1/assignments/{yz}/reports", json=REPORT, headers=headers), 401)
        refused(await c.post(f"{p}/v1/assignments/{yz}/accept", headers=headers), 401)
    r = await c.get(f"{a}/v1/units/yuzhong/assignments")
    assert r.headers.get("www-authenticate") == "Bearer"
    # The unit registry is public (ids and names): no token needed.
    assert (await c.get(f"{a}/v1/units")).status_code == 200
    refused(await c.get(f"{p}/v1/status", headers={"Authorization": f"Bearer {expired}"}), 401, "expired")


async def test_403_outside_the_unit_or_role(stack: Stack, world: dict[str, Any], c: httpx.AsyncClient) -> None:
    a, p, yz, pid = stack.assignment_url, stack.progress_url, world["yz"], world["pid"]
    other = stack.headers("department", "wanzhou")
    own = stack.headers("department", "yuzhong")
    auditor, verifier, sup = stack.headers("auditor"), stack.headers("verifier"), stack.headers("supervisor")
    review = {"decision": "approve", "comment": "ok"}
    verdict = {"decision": "pass", "findings": "ok"}
    # another unit's assignment
    refused(await c.post(f"{p}/v1/assignments/{yz}/accept", headers=other), 403, "wanzhou")
    refused(await c.post(f"{p}/v1/assignments/{yz}/plans", json=PLAN, headers=other), 403)
    refused(await c.post(f"{p}/v1/assignments/{yz}/reports", json=REPORT, headers=other), 403)
    refused(await c.post(f"{p}/v1/assignments/{yz}/verification-requests", headers=other), 403)
    refused(await c.get(f"{p}/v1/assignments/{yz}", headers=other), 403)
    refused(await c.get(f"{a}/v1/units/yuzhong/assignments", headers=other), 403)
    refused(await c.get(f"{p}/v1/status", params={"unit_id": "yuzhong"}, headers=other), 403)
    # a department approving, verifying or cancelling, even its own
    refused(await c.post(f"{p}/v1/assignments/{yz}/plans/{YEAR}/review", json=review, headers=own), 403, "department")
    refused(await c.post(f"{p}/v1/assignments/{yz}/verification", json=verdict, headers=own), 403)
    refused(await c.post(f"{p}/v1/assignments/{yz}/cancel", json={"reason": "x"}, headers=own), 403)
    refused(await c.post(f"{a}/v1/programmes/{pid}/dispatch", headers=own), 403)
    body = world["body"].model_dump(mode="json")
    refused(await c.post(f"{a}/v1/programmes", json=body, headers=own), 403)
    # auditors read only
    for method, url, json in [
        ("POST", f"{p}/v1/assignments/{yz}/accept", None),
        ("POST", f"{a}/v1/programmes", body),
        ("POST", f"{a}/v1/programmes/{pid}/dispatch", None),
        ("POST", f"{p}/v1/assignments/{yz}/plans", PLAN),
        ("POST", f"{p}/v1/assignments/{yz}/plans/{YEAR}/review", review),
        ("POST", f"{p}/v1/assignments/{yz}/reports", REPORT),
        ("POST", f"{p}/v1/assignments/{yz}/verification-requests", None),
        ("POST", f"{p}/v1/assignments/{yz}/verification", verdict),
        ("POST", f"{p}/v1/assignments/{yz}/cancel", {"reason": "x"}),
    ]:
        refused(await c.request(method, url, json=json, headers=auditor), 403, "auditor")
    assert (await c.get(f"{p}/v1/assignments/{yz}", headers=auditor)).status_code == 200
    assert (await c.get(f"{a}/v1/units/yuzhong/assignments", headers=auditor)).status_code == 200
    # verifiers verify, and do nothing else; supervisors do not submit a unit's work
    refused(await c.post(f"{p}/v1/assignments/{yz}/plans/{YEAR}/review", json=review, headers=verifier), 403)
    refused(await c.post(f"{p}/v1/assignments/{yz}/cancel", json={"reason": "x"}, headers=verifier), 403)
    refused(await c.post(f"{p}/v1/assignments/{yz}/plans", json=PLAN, headers=sup), 403)
    refused(await c.post(f"{p}/v1/assignments/{yz}/accept", headers=sup), 403)


async def test_404_unknown_ids(stack: Stack, world: dict[str, Any], c: httpx.AsyncClient) -> None:
    a, p, pid = stack.assignment_url, stack.progress_url, world["pid"]
    sup, own = stack.headers("supervisor"), stack.headers("department", "yuzhong")
    ghost = assignment_id(pid, 29, "yuzhong")  # well formed, never dispatched
    for bad in ("nonsense", "a.b.c", ghost):
        refused(await c.get(f"{p}/v1/assignments/{bad}", headers=sup), 404, "no assignment")
        refused(await c.post(f"{p}/v1/assignments/{bad}/reports", json=REPORT, headers=own), 404)
        refused(await c.post(f"{p}/v1/assignments/{bad}/cancel", json={"reason": "x"}, headers=sup), 404)
    refused(await c.post(f"{p}/v1/assignments/{ghost}/accept", headers=own), 404)
    refused(await c.get(f"{a}/v1/programmes/no-such-programme", headers=sup), 404)
    refused(await c.post(f"{a}/v1/programmes/no-such-programme/dispatch", headers=stack.headers("admin")), 404)
    refused(await c.get(f"{a}/v1/units/atlantis/assignments", headers=sup), 404)


async def test_409_wrong_stage_or_content(stack: Stack, world: dict[str, Any], c: httpx.AsyncClient) -> None:
    a, p, wz = stack.assignment_url, stack.progress_url, world["wz"]
    unit, sup, ver = stack.headers("department", "wanzhou"), stack.headers("supervisor"), stack.headers("verifier")
    refused(await c.post(f"{p}/v1/assignments/{wz}/plans", json=PLAN, headers=unit), 409, "not open")
    refused(await c.post(f"{p}/v1/assignments/{wz}/reports", json=REPORT, headers=unit), 409, "cannot be reported")
    refused(await c.post(f"{p}/v1/assignments/{wz}/verification-requests", headers=unit), 409)
    refused(await c.post(f"{p}/v1/assignments/{wz}/verification", json={"decision": "pass"}, headers=ver), 409)
    assert (await c.post(f"{p}/v1/assignments/{wz}/accept", headers=unit)).status_code == 200
    refused(await c.post(f"{p}/v1/assignments/{wz}/accept", headers=unit), 409, "already accepted")
    review = {"decision": "approve", "comment": "ok"}
    refused(await c.post(f"{p}/v1/assignments/{wz}/plans/{YEAR}/review", json=review, headers=sup), 409, "awaits")
    assert (await c.post(f"{p}/v1/assignments/{wz}/plans", json=PLAN, headers=unit)).status_code == 200
    no_reason = {"decision": "return", "comment": ""}
    refused(await c.post(f"{p}/v1/assignments/{wz}/plans/{YEAR}/review", json=no_reason, headers=sup), 409, "reason")
    wrong_year = {**PLAN, "milestones": [{"title": "m", "due": f"{YEAR + 1}-03-01"}]}
    refused(await c.post(f"{p}/v1/assignments/{wz}/plans", json=wrong_year, headers=unit), 409)
    # a programme id never changes content
    body = world["body"]
    changed = body.model_copy(update={"schedule": body.schedule.model_copy(update={"start_year": 2030})})
    refused(
        await c.post(f"{a}/v1/programmes", json=changed.model_dump(mode="json"), headers=stack.headers("admin")),
        409,
        "different",
    )
    # cancelled assignments take nothing more
    cancel = await c.post(f"{p}/v1/assignments/{wz}/cancel", json={"reason": "merged into task 1"}, headers=sup)
    assert cancel.status_code == 200 and cancel.json()["stage"] == "cancelled"
    refused(await c.post(f"{p}/v1/assignments/{wz}/cancel", json={"reason": "again"}, headers=sup), 409, "cancelled")


async def test_422_malformed_bodies_name_the_field(stack: Stack, world: dict[str, Any], c: httpx.AsyncClient) -> None:
    a, p, yz = stack.assignment_url, stack.progress_url, world["yz"]
    unit, sup, ver = stack.headers("department", "yuzhong"), stack.headers("supervisor"), stack.headers("verifier")
    cases: list[tuple[str, Any, dict[str, str], str]] = [
        ("/reports", {**REPORT, "percent": 150}, unit, "percent"),
        ("/reports", {**REPORT, "period": "2026-Q5"}, unit, "period"),
        ("/reports", {"percent": 10, "narrative": "n"}, unit, "period"),
        ("/reports", {**REPORT, "evidence": [{"name": "x", "sha256": "xyz", "size": 1}]}, unit, "evidence.0.sha256"),
        ("/reports", {**REPORT, "unexpected": 1}, unit, "unexpected"),
        ("/plans", {**PLAN, "milestones": []}, unit, "milestones"),
        ("/plans", {**PLAN, "year": "next"}, unit, "year"),
        (f"/plans/{YEAR}/review", {"decision": "maybe"}, sup, "decision"),
        ("/plans/1900/review", {"decision": "approve"}, sup, "year"),
        ("/verification", {"decision": "pass", "score": 101}, ver, "score"),
        ("/cancel", {"reason": ""}, sup, "reason"),
        ("/cancel", None, sup, "body"),
    ]
    for path, body, headers, field in cases:
        refused(await c.post(f"{p}/v1/assignments/{yz}{path}", json=body, headers=headers), 422, field)
    as_json = {**unit, "content-type": "application/json"}
    r = await c.post(f"{p}/v1/assignments/{yz}/reports", content=b"{not json", headers=as_json)
    refused(r, 422)
    refused(await c.get(f"{p}/v1/status", params={"limit": 501}, headers=sup), 422, "limit")
    refused(await c.get(f"{p}/v1/status", params={"overdue": "purple"}, headers=sup), 422, "overdue")
    refused(await c.get(f"{p}/v1/status", params={"stage": "dreaming"}, headers=sup), 422, "stage")
    bad = world["body"].model_dump(mode="json")
    bad["programme_id"] = f"x-{uuid.uuid4().hex[:8]}"
    bad["division"]["responsibilities"][0]["unit_id"] = "atlantis"
    refused(await c.post(f"{a}/v1/programmes", json=bad, headers=stack.headers("admin")), 422, "atlantis")
    early = world["body"].model_dump(mode="json")
    early["programme_id"] = f"x-{uuid.uuid4().hex[:8]}"
    early["division"]["responsibilities"][1]["horizon_year"] = early["schedule"]["start_year"] - 1
    refused(
        await c.post(f"{a}/v1/programmes", json=early, headers=stack.headers("admin")),
        422,
        "responsibilities.1.horizon_year",
    )
    bad["programme_id"] = "Not An Id"
    refused(await c.post(f"{a}/v1/programmes", json=bad, headers=stack.headers("admin")), 422, "programme_id")
    refused(await c.post(f"{p}/v1/assignments/{yz}/reports", content=b"x" * (1024 * 1024 + 1), headers=unit), 413)


async def test_idempotent_retry_reports_once(stack: Stack, world: dict[str, Any], c: httpx.AsyncClient) -> None:
    pid, p = world["pid"], stack.progress_url
    aid = assignment_id(pid, 1, "fgw")
    unit, sup = stack.headers("department", "fgw"), stack.headers("supervisor")
    assert (await c.post(f"{p}/v1/assignments/{aid}/accept", headers=unit)).status_code == 200
    assert (await c.post(f"{p}/v1/assignments/{aid}/plans", json=PLAN, headers=unit)).status_code == 200
    review = {"decision": "approve", "comment": "ok"}
    assert (await c.post(f"{p}/v1/assignments/{aid}/plans/{YEAR}/review", json=review, headers=sup)).status_code == 200
    key = {"Idempotency-Key": str(uuid.uuid4())}
    url = f"{p}/v1/assignments/{aid}/reports"
    answers = [await c.post(url, json=REPORT, headers={**unit, **key}) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [r.json()["replayed"] for r in answers] == [False, True, True]
    fresh = await c.post(f"{p}/v1/assignments/{aid}/reports", json=REPORT, headers=unit)  # no key: a new report
    assert fresh.status_code == 200 and fresh.json()["replayed"] is False
    reports = [e for e in await stream_events(stack.js, aid) if e.type == "ProgressReported"]
    assert len(reports) == 2
    assert reports[0].event_id == answers[0].json()["event_ids"][0]


async def test_a_key_sent_again_with_a_different_request_is_refused(
    stack: Stack, world: dict[str, Any], c: httpx.AsyncClient
) -> None:
    """A reused Idempotency-Key with another body, or on another command, is 422, not the first answer."""
    pid, p = world["pid"], stack.progress_url
    aid = assignment_id(pid, 1, "yuzhong")
    unit, sup = stack.headers("department", "yuzhong"), stack.headers("supervisor")
    assert (await c.post(f"{p}/v1/assignments/{aid}/accept", headers=unit)).status_code == 200
    assert (await c.post(f"{p}/v1/assignments/{aid}/plans", json=PLAN, headers=unit)).status_code == 200
    review = {"decision": "approve", "comment": "ok"}
    assert (await c.post(f"{p}/v1/assignments/{aid}/plans/{YEAR}/review", json=review, headers=sup)).status_code == 200
    keyed = {**unit, "Idempotency-Key": str(uuid.uuid4())}
    url = f"{p}/v1/assignments/{aid}/reports"
    first = await c.post(url, json=REPORT, headers=keyed)
    assert first.status_code == 200 and first.json()["replayed"] is False, first.text
    other_body = {**REPORT, "percent": 60, "narrative": "a different report"}
    refused(await c.post(url, json=other_body, headers=keyed), 422, "key used with a different request")
    # the same key on another command: a different update id, so the workflow itself refuses it
    refused(await c.post(f"{p}/v1/assignments/{aid}/verification-requests", json={}, headers=keyed), 422, "键")
    again = await c.post(url, json=REPORT, headers=keyed)  # the first request again is still a retry
    assert again.status_code == 200 and again.json() == {**first.json(), "replayed": True}
    events = await stream_events(stack.js, aid)
    assert [e.event_id for e in events if e.type == "ProgressReported"] == first.json()["event_ids"]
    assert "VerificationRequested" not in {e.type for e in events}
    status = await c.get(f"{p}/v1/assignments/{aid}", headers=unit)
    assert status.json()["percent"] == REPORT["percent"] and status.json()["counts"]["reports"] == 1


async def test_names_with_bidi_overrides_or_control_characters_are_refused(
    stack: Stack, world: dict[str, Any], c: httpx.AsyncClient
) -> None:
    p, wz = stack.progress_url, world["wz"]
    unit = stack.headers("department", "wanzhou")
    before = len(await stream_events(stack.js, wz))
    plan = {**PLAN, "milestones": [{"title": "完成\u0007验收", "due": f"{YEAR}-12-01"}]}
    refused(await c.post(f"{p}/v1/assignments/{wz}/plans", json=plan, headers=unit), 422, "milestones.0.title 含有")
    named = {**REPORT, "indicator_values": [{"name": "\u2067产值\u2069", "value": 1}]}
    r = await c.post(f"{p}/v1/assignments/{wz}/reports", json=named, headers=unit)
    refused(r, 422, "U+2067、U+2069")
    files = {"file": ("报告\u202e0fdp.exe", b"%PDF-1.7\n%%EOF\n")}
    r = await c.post(f"{p}/v1/assignments/{wz}/evidence", files=files, headers=unit)
    refused(r, 422, "file name 含有不可见的控制字符 U+202E")
    assert len(await stream_events(stack.js, wz)) == before  # nothing recorded
    listed = await c.get(f"{p}/v1/assignments/{wz}/evidence", headers=unit)
    assert all("\u202e" not in e["name"] for e in listed.json()["items"])
    body = small_programme(start_year=YEAR).model_dump(mode="json")
    body["units"][0]["name"] = "渝中\u202e区"
    admin = stack.headers("admin")
    refused(
        await c.post(f"{stack.assignment_url}/v1/programmes", json=body, headers=admin),
        422,
        "units.0.name 含有",
    )


async def test_401_says_where_a_token_comes_from(stack: Stack, world: dict[str, Any], c: httpx.AsyncClient) -> None:
    p, yz = stack.progress_url, world["yz"]
    expired = issue_token(stack.key_dir, UserRole.DEPARTMENT, "yuzhong", ttl=dt.timedelta(seconds=-60))
    for headers, why in (
        ({}, "未提供令牌，请先取得令牌 (no token was sent)"),
        ({"Authorization": "Bearer not-a-jwt"}, "令牌无效 (invalid token: it is not a token policyflow can read"),
        ({"Authorization": f"Bearer {expired}"}, "令牌无效 (the token has expired"),
    ):
        detail = (await c.get(f"{p}/v1/assignments/{yz}", headers=headers)).json()["detail"]
        assert detail.startswith(why), detail
        assert "policyflow token issue --role ROLE [--unit UNIT] --save" in detail and "POLICYFLOW_TOKEN" in detail


async def test_404_names_the_ids_meant_and_403_stays_for_another_units(
    stack: Stack, world: dict[str, Any], c: httpx.AsyncClient
) -> None:
    p, pid, yz = stack.progress_url, world["pid"], world["yz"]
    own, other = stack.headers("department", "yuzhong"), stack.headers("department", "wanzhou")
    typo = yz.replace("yuzhong", "yuzhog")  # a unit mistyped: names nobody's assignment
    refused(await c.post(f"{p}/v1/assignments/{typo}/accept", headers=own), 404, f"did you mean {yz} or")
    refused(await c.get(f"{p}/v1/assignments/{typo}", headers=stack.headers("supervisor")), 404, f"did you mean {yz}")
    r = await c.post(f"{p}/v1/assignments/{typo}/accept", headers=other)
    refused(r, 404, "no assignment")
    assert "yuzhong" not in r.json()["detail"].replace(typo, "")  # wanzhou is shown only its own ids
    refused(await c.post(f"{p}/v1/assignments/{pid}-t02-yuzhong/accept", headers=own), 404, f"did you mean {yz}")
    refused(await c.post(f"{p}/v1/assignments/nonsense/accept", headers=own), 404, "programme.tNN.unit")
    refused(await c.post(f"{p}/v1/assignments/{yz}/accept", headers=other), 403, "wanzhou")


async def test_a_command_right_after_dispatch_is_not_refused(stack: Stack, c: httpx.AsyncClient) -> None:
    """The read model has not folded the new assignment yet; its workflow exists, so it is not a 404."""
    body = small_programme(start_year=YEAR)
    admin = stack.headers("admin")
    r = await c.post(f"{stack.assignment_url}/v1/programmes", json=body.model_dump(mode="json"), headers=admin)
    assert r.status_code == 200, r.text
    r = await c.post(f"{stack.assignment_url}/v1/programmes/{body.programme_id}/dispatch", headers=admin)
    assert r.status_code == 200, r.text
    aid = assignment_id(body.programme_id, 3, "yuzhong")
    r = await c.post(
        f"{stack.progress_url}/v1/assignments/{aid}/accept", headers=stack.headers("department", "yuzhong")
    )
    assert r.status_code == 200 and r.json()["stage"] == "planning", r.text


async def test_422_in_plain_words(stack: Stack, world: dict[str, Any], c: httpx.AsyncClient) -> None:
    p, yz = stack.progress_url, world["yz"]
    unit = stack.headers("department", "yuzhong")
    for path, body, words in (
        ("/reports", {**REPORT, "period": "2026-Q5"}, "period must look like 2026-Q4"),
        ("/reports", {**REPORT, "percent": 150}, "percent must be at most 100"),
        ("/plans", {**PLAN, "milestones": []}, "milestones must have at least one entry"),
        ("/plans", {**PLAN, "year": "next"}, "year must be a whole number"),
        ("/reports", {**REPORT, "unexpected": 1}, "unexpected is not a field this request takes"),
    ):
        r = await c.post(f"{p}/v1/assignments/{yz}{path}", json=body, headers=unit)
        refused(r, 422, words)
        assert "should" not in r.text and "^" not in r.text, r.text
        assert r.json()["errors"][0]["message"] in r.json()["detail"]
    r = await c.get(f"{p}/v1/status", params={"programme_id": "Not An Id"}, headers=stack.headers("supervisor"))
    refused(r, 422, "query.programme_id must look like cq-2022-79")
