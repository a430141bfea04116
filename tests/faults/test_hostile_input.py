"""Hostile input against the running services (subprocesses, real HTTP, real servers).

A hand-written list of attacks (OWASP API Top 10: broken object- and function-level
authorisation, broken authentication, mass assignment, unrestricted resource consumption, bad
input): forged and stale tokens, another unit's assignments, a department approving its own plan,
an auditor writing, oversized bodies and lists, absurd numbers (percent 250, year 1900, NaN,
Infinity, 1e309), broken unicode. Each must be answered 4xx with a clear message, never 5xx,
must store nothing (ledger, stream and workflow state unchanged) and must be logged by the
service that refused it. In names and file names bidi overrides and control characters are
refused (422); in a narrative, odd but valid unicode (RTL overrides, zero-width, NUL, astral
plane) is accepted only if it is stored exactly and the chain still verifies.

tests/e2e/test_service_errors.py covers the ordinary 401/403/404/409/422 answers in-process; this
file is the adversarial list, with the storage and logging checks.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest

from services.audit.ledger import utc_text
from services.shared.auth import AUDIENCE, ISSUER, ensure_keys
from tests.faults.figures import say, table
from tests.faults.harness import FaultStack, rounds
from tests.faults.scenario import Driver, programme
from tests.support.clock import china_today
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(300 * rounds())  # generous: a noisy 2-core machine, N rounds

YEAR = china_today().year
QUARTER = f"{YEAR}-Q1"  # begun whenever in the year the test runs
SHA = "ab" * 32
REPORT = {"period": QUARTER, "percent": 40, "narrative": "进展正常"}
PLAN = {"year": YEAR, "milestones": [{"title": "m", "due": f"{YEAR}-12-01"}], "indicators": []}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(role: str = "supervisor", unit: str | None = None, **extra: Any) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    base = {
        "sub": f"hostile-{uuid.uuid4().hex[:8]}",
        "role": role,
        "unit_id": unit,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + 3600,
    }
    return {k: v for k, v in {**base, **extra}.items() if v is not ...}


def unsigned(payload: dict[str, Any]) -> str:
    """alg=none: a header, the claims and an empty signature."""
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}."


def hmac_with_public_key(payload: dict[str, Any], public_pem: bytes) -> str:
    """The algorithm-confusion attack: HS256 keyed with the (public) verification key."""
    head = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{head}.{b64(hmac.new(public_pem, head.encode(), hashlib.sha256).digest())}"


@dataclass
class Attack:
    name: str
    service: str
    method: str
    path: str
    headers: dict[str, str]
    expect: set[int]
    log_event: str | None  # what the refusing service must log
    body: Any = None
    content: bytes | None = None
    needle: str = ""  # in the answer's detail
    sub: str | None = None  # the token's subject, to find the 403 log line
    chunked: bool = False  # send `content` with Transfer-Encoding: chunked, no Content-Length


@dataclass
class World:
    stack: FaultStack
    pid: str
    own: str  # d00's assignment, implementing (plan approved)
    other: str  # d01's assignment, plan submitted
    attacks: list[Attack] = field(default_factory=list)


@pytest.fixture(scope="module")
async def world(fault_stack: FaultStack) -> AsyncIterator[World]:
    body = programme(tasks=1, units=3, start_year=YEAR, horizon=YEAR + 1, tag="hostile")
    async with httpx.AsyncClient(timeout=60) as http:
        driver = Driver(fault_stack, http)
        own, other, _ = await driver.import_and_dispatch(body)
        for aid in (own, other):
            unit = aid.rsplit(".", 1)[1]
            await driver.must(aid, "accept", "progress", f"/v1/assignments/{aid}/accept", "department", unit)
            await driver.must(aid, "submit_plan", "progress", f"/v1/assignments/{aid}/plans", "department", unit, PLAN)
        await driver.must(
            own,
            "review_plan",
            "progress",
            f"/v1/assignments/{own}/plans/{YEAR}/review",
            "supervisor",
            body={"decision": "approve", "comment": "ok"},
        )
        await fault_stack.quiesce(http, body.programme_id)
    yield World(fault_stack, body.programme_id, own, other)


def attacks(w: World) -> Iterator[Attack]:
    s, own, other = w.stack, w.own, w.other
    key_dir = s.key_dir
    private, public = ensure_keys(key_dir)
    foreign_private, _ = ensure_keys(key_dir.parent / "foreign-keys")
    unit, stranger = own.rsplit(".", 1)[1], other.rsplit(".", 1)[1]
    report, dispatch, checkpoint = (
        f"/v1/assignments/{own}/reports",
        f"/v1/programmes/{w.pid}/dispatch",
        "/v1/audit/checkpoints",
    )

    def signed(c: dict[str, Any], key: bytes | None = None, alg: str = "EdDSA") -> dict[str, str]:
        return {"Authorization": f"Bearer {jwt.encode(c, key or private.read_bytes(), algorithm=alg)}"}

    # ---- broken authentication: 401 and auth.rejected, on every service --------------------------------
    forged: list[tuple[str, dict[str, str], str]] = [
        ("alg=none", {"Authorization": f"Bearer {unsigned(claims('department', unit))}"}, ""),
        (
            "HS256 keyed with the public key",
            {"Authorization": "Bearer " + hmac_with_public_key(claims("supervisor"), public.read_bytes())},
            "",
        ),
        ("expired", signed(claims("department", unit, exp=int(dt.datetime.now(dt.UTC).timestamp()) - 60)), "expired"),
        ("wrong signature (another key)", signed(claims("department", unit), foreign_private.read_bytes()), ""),
        ("wrong audience", signed(claims("department", unit, aud="someone-else")), "audience"),
        ("no audience", signed(claims("department", unit, aud=...)), ""),
        ("no expiry", signed(claims("department", unit, exp=...)), ""),
        ("unknown role", signed(claims("emperor")), "role"),
        ("role system (not a person)", signed(claims("system")), "role"),
        ("department without a unit", signed(claims("department", None)), "unit"),
        ("not a JWT", {"Authorization": "Bearer not.a.jwt"}, ""),
        ("token of a JWT header only", {"Authorization": f"Bearer {b64(b'{}')}"}, ""),
    ]
    for name, headers, needle in forged:
        yield Attack(
            f"401 {name}: report", "progress", "POST", report, headers, {401}, "auth.rejected", REPORT, needle=needle
        )
        yield Attack(
            f"401 {name}: dispatch", "assignment", "POST", dispatch, headers, {401}, "auth.rejected", needle=needle
        )
        yield Attack(
            f"401 {name}: checkpoint", "audit", "POST", checkpoint, headers, {401}, "auth.rejected", needle=needle
        )

    # ---- broken object / function level authorisation: 403 and auth.* ----------------------------------
    def as_(role: str, u: str | None = None) -> tuple[dict[str, str], str]:
        sub = f"hostile-{role}-{uuid.uuid4().hex[:8]}"
        return s.headers(role, u, sub=sub), sub

    review = {"decision": "approve", "comment": "自己批准自己"}
    verdict = {"decision": "pass", "findings": "自己验收自己"}
    cases: list[tuple[str, str, str, str, tuple[str, str | None], Any, str]] = [
        (
            "another unit reports on it",
            "progress",
            "POST",
            f"/v1/assignments/{other}/reports",
            ("department", unit),
            REPORT,
            "auth.refused",
        ),
        (
            "another unit submits its plan",
            "progress",
            "POST",
            f"/v1/assignments/{other}/plans",
            ("department", unit),
            PLAN,
            "auth.refused",
        ),
        (
            "another unit accepts it",
            "progress",
            "POST",
            f"/v1/assignments/{own}/accept",
            ("department", stranger),
            None,
            "auth.refused",
        ),
        (
            "another unit reads it",
            "progress",
            "GET",
            f"/v1/assignments/{other}",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "another unit reads its inbox",
            "assignment",
            "GET",
            f"/v1/units/{stranger}/assignments",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "another unit asks for its status",
            "progress",
            "GET",
            f"/v1/status?unit_id={stranger}",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "a department approves its own plan",
            "progress",
            "POST",
            f"/v1/assignments/{other}/plans/{YEAR}/review",
            ("department", stranger),
            review,
            "auth.refused",
        ),
        (
            "a department passes its own verification",
            "progress",
            "POST",
            f"/v1/assignments/{own}/verification",
            ("department", unit),
            verdict,
            "auth.refused",
        ),
        (
            "a department cancels its own assignment",
            "progress",
            "POST",
            f"/v1/assignments/{own}/cancel",
            ("department", unit),
            {"reason": "不想做了"},
            "auth.refused",
        ),
        (
            "a department dispatches the programme",
            "assignment",
            "POST",
            f"/v1/programmes/{w.pid}/dispatch",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "a department reads the audit ledger",
            "audit",
            "GET",
            "/v1/audit/events",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "an auditor reports",
            "progress",
            "POST",
            f"/v1/assignments/{own}/reports",
            ("auditor", None),
            REPORT,
            "auth.refused",
        ),
        (
            "an auditor approves",
            "progress",
            "POST",
            f"/v1/assignments/{other}/plans/{YEAR}/review",
            ("auditor", None),
            review,
            "auth.refused",
        ),
        (
            "an auditor cancels",
            "progress",
            "POST",
            f"/v1/assignments/{own}/cancel",
            ("auditor", None),
            {"reason": "x"},
            "auth.refused",
        ),
        (
            "an auditor accepts",
            "progress",
            "POST",
            f"/v1/assignments/{own}/accept",
            ("auditor", None),
            None,
            "auth.refused",
        ),
        (
            "an auditor makes a checkpoint",
            "audit",
            "POST",
            "/v1/audit/checkpoints",
            ("auditor", None),
            None,
            "auth.refused",
        ),
        (
            "a verifier approves a plan",
            "progress",
            "POST",
            f"/v1/assignments/{other}/plans/{YEAR}/review",
            ("verifier", None),
            review,
            "auth.refused",
        ),
        (
            "a supervisor reports for a unit",
            "progress",
            "POST",
            f"/v1/assignments/{own}/reports",
            ("supervisor", None),
            REPORT,
            "auth.refused",
        ),
    ]
    for name, service, method, path, (role, u), body, event in cases:
        headers, sub = as_(role, u)
        yield Attack(f"403 {name}", service, method, path, headers, {403}, event, body, sub=sub)

    # ---- mass assignment and malformed commands: 422 and request.invalid ---------------------------------
    dept = s.headers("department", unit)
    sup = s.headers("supervisor")
    invalid: list[tuple[str, str, Any, dict[str, str], str]] = [
        ("percent 250", report, {**REPORT, "percent": 250}, dept, "percent"),
        ("percent -1", report, {**REPORT, "percent": -1}, dept, "percent"),
        ("plan for 1900", f"/v1/assignments/{own}/plans", {**PLAN, "year": 1900}, dept, "year"),
        ("period 1900-Q1", report, {**REPORT, "period": "1900-Q1"}, dept, "period"),
        (
            "an evidence file named with an RTL override",
            report,
            {**REPORT, "evidence": [{"name": "报告\u202e0fdp.exe", "sha256": SHA, "size": 1}]},
            dept,
            "evidence.0.name 含有不可见的控制字符 U+202E",
        ),
        (
            "a milestone titled with a control character",
            f"/v1/assignments/{own}/plans",
            {**PLAN, "milestones": [{"title": "完成\u0007验收", "due": f"{YEAR}-12-01"}]},
            dept,
            "U+0007",
        ),
        (
            "an indicator named with a bidi isolate",
            report,
            {**REPORT, "indicator_values": [{"name": "\u2067产值\u2069", "value": 1}]},
            dept,
            "U+2067",
        ),
        ("period 2026-Q5", report, {**REPORT, "period": f"{YEAR}-Q5"}, dept, "period"),
        (
            "101 evidence files",
            report,
            {**REPORT, "evidence": [{"name": f"f{i}", "sha256": SHA, "size": 1} for i in range(101)]},
            dept,
            "evidence",
        ),
        (
            "evidence of -1 bytes",
            report,
            {**REPORT, "evidence": [{"name": "f", "sha256": SHA, "size": -1}]},
            dept,
            "size",
        ),
        (
            "evidence of 1e20 bytes",
            report,
            {**REPORT, "evidence": [{"name": "f", "sha256": SHA, "size": 10**20}]},
            dept,
            "size",
        ),
        (
            "evidence hash not sha256",
            report,
            {**REPORT, "evidence": [{"name": "f", "sha256": "AB" * 32, "size": 1}]},
            dept,
            "sha256",
        ),
        (
            "201 indicator values",
            report,
            {**REPORT, "indicator_values": [{"name": f"i{i}", "value": 1} for i in range(201)]},
            dept,
            "indicator_values",
        ),
        ("narrative of 100,000 characters", report, {**REPORT, "narrative": "长" * 100_000}, dept, "narrative"),
        ("empty narrative", report, {**REPORT, "narrative": ""}, dept, "narrative"),
        ("actor smuggled in the body", report, {**REPORT, "actor": {"sub": "x", "role": "supervisor"}}, dept, "actor"),
        ("command_id smuggled in the body", report, {**REPORT, "command_id": "x"}, dept, "command_id"),
        ("review for year 1900", f"/v1/assignments/{other}/plans/1900/review", {"decision": "approve"}, sup, "year"),
        (
            "decision 'approve; drop table'",
            f"/v1/assignments/{other}/plans/{YEAR}/review",
            {"decision": "approve'; drop table ledger; --"},
            sup,
            "decision",
        ),
    ]
    for name, path, body, headers, needle in invalid:
        yield Attack(f"422 {name}", "progress", "POST", path, headers, {422}, "request.invalid", body, needle=needle)
    raw_json: list[tuple[str, bytes, str]] = [
        ("percent NaN", f'{{"period":"{QUARTER}","percent":NaN,"narrative":"n"}}'.encode(), "percent"),
        ("percent Infinity", f'{{"period":"{QUARTER}","percent":Infinity,"narrative":"n"}}'.encode(), "percent"),
        ("percent 1e309", f'{{"period":"{QUARTER}","percent":1e309,"narrative":"n"}}'.encode(), "percent"),
        (
            "indicator value NaN",
            f'{{"period":"{QUARTER}","percent":1,"narrative":"n","indicator_values":'
            f'[{{"name":"x","value":NaN}}]}}'.encode(),
            "value",
        ),
        (
            "indicator value -Infinity",
            f'{{"period":"{QUARTER}","percent":1,"narrative":"n","indicator_values":'
            f'[{{"name":"x","value":-Infinity}}]}}'.encode(),
            "value",
        ),
        (
            "narrative with a lone surrogate",
            f'{{"period":"{QUARTER}","percent":1,"narrative":"a\\ud800b"}}'.encode(),
            "narrative",
        ),
        ("not JSON", b"{percent: 1", ""),
    ]
    for name, content, needle in raw_json:
        yield Attack(
            f"422 {name}",
            "progress",
            "POST",
            report,
            {**dept, "content-type": "application/json"},
            {422},
            "request.invalid",
            content=content,
            needle=needle,
        )
    # FastAPI answers this itself (its JSON parser's recursion limit), before the service sees it: not logged.
    yield Attack(
        "400 JSON nested 100,000 deep",
        "progress",
        "POST",
        report,
        {**dept, "content-type": "application/json"},
        {400},
        None,
        content=b"[" * 100_000 + b"]" * 100_000,
    )
    target_nan = (
        f'{{"year":{YEAR},"milestones":[{{"title":"m","due":"{YEAR}-12-01"}}],'
        f'"indicators":[{{"name":"x","target":1e309}}]}}'
    ).encode()
    other_dept = s.headers("department", stranger)
    yield Attack(
        "422 plan indicator target 1e309",
        "progress",
        "POST",
        f"/v1/assignments/{other}/plans",
        {**other_dept, "content-type": "application/json"},
        {422},
        "request.invalid",
        content=target_nan,
        needle="target",
    )

    # ---- unrestricted resource consumption: 413 -----------------------------------------------------------
    big = json.dumps({**REPORT, "narrative": "x" * (1024 * 1024 + 10)}).encode()
    yield Attack(
        "413 body over 1 MiB",
        "progress",
        "POST",
        report,
        {**dept, "content-type": "application/json"},
        {413},
        "request.too_large",
        content=big,
    )
    yield Attack(
        "413 body over 1 MiB, chunked (no Content-Length)",
        "progress",
        "POST",
        report,
        {**dept, "content-type": "application/json"},
        {413},
        "request.too_large",
        content=big,
        chunked=True,
    )
    huge = json.dumps({**REPORT, "narrative": "x" * (64 * 1024 * 1024)}).encode()
    yield Attack(
        "413 body of 64 MiB, chunked",
        "progress",
        "POST",
        report,
        {**dept, "content-type": "application/json"},
        {413},
        "request.too_large",
        content=huge,
        chunked=True,
    )
    # Each field within its limit, the whole too big for one event (the stream's max_msg_size): refused
    # up front, or the workflow would fold a fact it can never publish and the assignment would wedge.
    nul_report = {
        **REPORT,
        "narrative": "\u0000" * 20_000,
        "evidence": [{"name": "\u0000" * 300, "sha256": SHA, "size": 1} for _ in range(100)],
    }
    yield Attack(
        "413 report too big for one event (NULs, 100 evidence files)",
        "progress",
        "POST",
        report,
        dept,
        {413},
        "command.too_large",
        nul_report,
        needle="event",
    )
    cjk_plan = {
        "year": YEAR,
        "milestones": [{"title": "绿" * 500, "due": f"{YEAR}-12-01"} for _ in range(200)],
        "indicators": [{"name": "建" * 200, "unit": "%", "target": i} for i in range(200)],
    }
    yield Attack(
        "413 plan too big for one event (200 milestones of 500 CJK characters)",
        "progress",
        "POST",
        f"/v1/assignments/{other}/plans",
        other_dept,
        {413},
        "command.too_large",
        cjk_plan,
        needle="event",
    )
    yield Attack(
        "413 body over 1 MiB, programme import",
        "assignment",
        "POST",
        "/v1/programmes",
        {**sup, "content-type": "application/json"},
        {413},
        "request.too_large",
        content=big,
    )


async def send(http: httpx.AsyncClient, w: World, a: Attack) -> httpx.Response:
    url = f"{w.stack.url(a.service)}{a.path}"
    if a.content is not None and a.chunked:
        content = a.content

        async def chunks() -> AsyncIterator[bytes]:
            for lo in range(0, len(content), 64 * 1024):
                yield content[lo : lo + 64 * 1024]

        return await http.request(a.method, url, content=chunks(), headers=a.headers)
    if a.content is not None:
        return await http.request(a.method, url, content=a.content, headers=a.headers)
    return await http.request(a.method, url, json=a.body, headers=a.headers)


async def stored(w: World, http: httpx.AsyncClient) -> dict[str, Any]:
    """Everything an accepted attack would have changed (the ledger's facts: its refusals are apart)."""
    return {
        "stream_last_seq": await w.stack.stream_last_seq(),
        "ledger_facts": len(await w.stack.ledger(http)),
        "own": await w.stack.workflow_status(http, w.own),
        "other": await w.stack.workflow_status(http, w.other),
    }


async def test_attacks_are_refused_logged_and_store_nothing(world: World, http: httpx.AsyncClient) -> None:
    before = await stored(world, http)
    began = utc_text(dt.datetime.now(dt.UTC))
    failures: list[str] = []
    tried = 0
    by_status: dict[int, int] = {}
    for a in attacks(world):
        tried += 1
        mark = world.stack.log_mark(a.service)
        r = await send(http, world, a)
        by_status[r.status_code] = by_status.get(r.status_code, 0) + 1
        where = f"{a.name} ({a.method} {a.service} {a.path[:60]})"
        if r.status_code not in a.expect:
            failures.append(f"{where}: {r.status_code} {r.text[:200]}")
            continue
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else None
        if not isinstance(detail, str) or not detail.strip():
            failures.append(f"{where}: no reason given: {r.text[:200]}")
        elif a.needle and a.needle.lower() not in detail.lower():
            failures.append(f"{where}: reason {detail!r} does not mention {a.needle!r}")
        if a.log_event is not None and not await logged(world.stack, a, mark):
            failures.append(f"{where}: no {a.log_event} line in the {a.service} log")
    after = await stored(world, http)

    async def refusals_ledgered() -> int | None:
        # Every 403 went to a caller a token named: each becomes one AccessRefused entry, by its request.
        rows = await world.stack.ledger(http, refusals=True)
        count = sum(row["type"] == "AccessRefused" and row["occurred_at"] >= began for row in rows)
        return count if count >= by_status.get(403, 0) else None

    ledgered = await until(refusals_ledgered, "the refusals in the ledger", 60)
    table(
        "hostile input",
        [
            ("attacks tried", tried),
            ("answers", dict(sorted(by_status.items()))),
            ("5xx answers", sum(n for st, n in by_status.items() if st >= 500)),
            (
                "stored (stream / ledger facts)",
                f"{after['stream_last_seq'] - before['stream_last_seq']} / "
                f"{after['ledger_facts'] - before['ledger_facts']}",
            ),
            ("refusals in the ledger", ledgered),
            ("not as expected", len(failures)),
        ],
    )
    for f in failures:
        say(f"  ! {f}")
    assert after == before, "an attack changed what is stored"
    assert ledgered == by_status.get(403, 0), "a 403 is one ledger entry, and only a refusal is"
    assert not failures


async def logged(stack: FaultStack, a: Attack, mark: int) -> bool:
    def match(line: dict[str, Any]) -> bool:
        if line.get("event") != a.log_event:
            return False
        if a.sub is not None:
            return line.get("sub") == a.sub
        return "path" not in line or line["path"] == a.path.split("?")[0]

    async def probe() -> bool:
        return any(match(line) for line in stack.log_since(a.service, mark))

    try:
        await until(probe, f"{a.log_event} logged", timeout=10.0, interval=0.1)
    except AssertionError:
        return False
    return True


ODD_BUT_VALID = {
    "RTL override": "进展\u202e常正\u202c，按计划推进",
    "zero-width characters": "零\u200b宽\u200c字\u200d符\ufeff",
    "NUL and other control characters": "a\u0000b\u0007c\u001bd",
    "astral plane": "😀𠀀𝒳🏗️ 绿色建筑",
    "combining marks": "e\u0301" * 500,
    "Arabic and Hebrew": "تقرير התקדמות report",
    "20,000 astral characters (the most a narrative holds)": "𠀀" * 20_000,
}


async def test_odd_unicode_is_stored_exactly_or_refused(world: World, http: httpx.AsyncClient) -> None:
    """Valid but odd text: if accepted, the ledger, the replay and the workflow hold exactly what was sent,
    and the chain verifies; if refused, it is a 422 that is logged and stores nothing."""
    s, aid = world.stack, world.own
    unit = aid.rsplit(".", 1)[1]
    outcomes: dict[str, str] = {}
    sent: dict[str, str] = {}  # event id -> narrative
    # A report names only evidence uploaded for the assignment; the name it gives the file is its own.
    files = {"file": ("报告.pdf", b"%PDF-1.7\n%%EOF\n")}
    up = await http.post(
        f"{s.url('progress')}/v1/assignments/{aid}/evidence", files=files, headers=s.headers("department", unit)
    )
    assert up.status_code in (200, 201), up.text
    uploaded = {"sha256": up.json()["sha256"], "size": up.json()["size"]}
    for i, (name, text) in enumerate(ODD_BUT_VALID.items()):
        evidence = [{"name": f"报告{i}.pdf", **uploaded}]  # a name with a bidi override is refused (the 422s)
        body = {"period": QUARTER, "percent": 50 + i, "narrative": text, "evidence": evidence}
        mark = s.log_mark("progress")
        r = await http.post(
            f"{s.url('progress')}/v1/assignments/{aid}/reports", json=body, headers=s.headers("department", unit)
        )
        outcomes[name] = str(r.status_code)
        assert r.status_code in (200, 422), f"{name}: {r.status_code} {r.text[:200]}"
        if r.status_code == 200:
            (event_id,) = r.json()["event_ids"]
            sent[event_id] = text
        else:
            assert await logged(
                s,
                Attack(name, "progress", "POST", f"/v1/assignments/{aid}/reports", {}, {422}, "request.invalid"),
                mark,
            )
    await s.quiesce(http, world.pid)
    ledger = {row["event_id"]: json.loads(row["canonical"]) for row in await s.ledger(http, world.pid)}
    verify = await s.verify(http)
    status = await s.workflow_status(http, aid)
    table("odd unicode in narratives", [*outcomes.items(), ("chain verifies", verify["ok"])])
    for event_id, text in sent.items():
        assert ledger[event_id]["payload"]["narrative"] == text, f"{event_id} was not stored exactly"
    if sent:
        assert status["last_report"]["narrative"] == list(sent.values())[-1]
    assert verify["ok"], verify
