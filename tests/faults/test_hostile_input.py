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

The attacks are listed in tests/faults/attacks_on_access.py and tests/faults/attacks_on_input.py.

tests/e2e/test_service_errors.py covers the ordinary 401/403/404/409/422 answers in-process; this
file is the adversarial list, with the storage and logging checks.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from services.audit.ledger import utc_text
from tests.faults.attacks import PLAN, QUARTER, YEAR, Attack, World, logged, send
from tests.faults.attacks_on_access import access_attacks
from tests.faults.attacks_on_input import input_attacks
from tests.faults.figures import say, table
from tests.faults.harness import FaultStack, rounds
from tests.faults.scenario import Driver, programme
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(300 * rounds())  # generous: a noisy 2-core machine, N rounds


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
    """The whole list, in the order it is sent."""
    yield from access_attacks(w)
    yield from input_attacks(w)


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
