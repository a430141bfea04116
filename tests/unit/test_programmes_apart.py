"""Two programmes imported side by side (tests/unit/authz_world.py): no query, export or replay of
one returns the other's assignments or units, whether the caller filters by programme or holds a
token limited to one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.unit.authz_world import P1, P2, TARGET, World, build, events, headers_for, programme

OTHER = {P1: P2, P2: P1}
ASSIGNMENTS = {pid: len(programme(pid).division.responsibilities) for pid in (P1, P2)}  # 7 and 6
EVENTS = {pid: len(events(pid)) for pid in (P1, P2)}  # its import and its assignments' events


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async for w in build(tmp_path_factory.mktemp("apart")):
        yield w


def only(pid: str, text: str) -> bool:
    """The text names programme `pid` and never the other one."""
    return pid in text and OTHER[pid] not in text


@pytest.mark.parametrize("pid", [P1, P2])
async def test_filtered_by_programme_nothing_of_the_other_comes_back(world: World, pid: str) -> None:
    progress, audit = world.clients["progress"], world.clients["audit"]
    for caller in ("city", "auditor"):
        h = world.headers(caller)
        page = (await progress.get("/v1/status", params={"programme_id": pid, "limit": 500}, headers=h)).json()
        assert page["total"] == len(page["items"]) == ASSIGNMENTS[pid]
        assert {i["programme_id"] for i in page["items"]} == {pid}
        for fmt in ("csv", "xlsx"):
            r = await progress.get("/v1/status", params={"programme_id": pid, "format": fmt}, headers=h)
            assert r.status_code == 200 and (fmt == "xlsx" or only(pid, r.content.decode("utf-8-sig")))
        summary = await progress.get("/v1/status/summary", params={"programme_id": pid, "by": "task"}, headers=h)
        assert sum(i["total"] for i in summary.json()["items"]) == page["total"]
    h = world.headers("auditor")
    entries = (await audit.get("/v1/audit/events", params={"programme_id": pid, "limit": 1000}, headers=h)).json()
    assert entries["total"] == EVENTS[pid] and {e["programme_id"] for e in entries["items"]} == {pid}
    lines = (await audit.get("/v1/audit/events", params={"programme_id": pid},
                             headers={**h, "accept": "application/x-ndjson"})).text.splitlines()  # fmt: skip
    assert len(lines) == entries["total"] and all(json.loads(x)["programme_id"] == pid for x in lines)
    replay = await audit.get("/v1/audit/replay", params={"programme_id": pid, "as_of": "2030-01-01"}, headers=h)
    assert {s["programme_id"] for s in replay.json()["items"]} == {pid}
    assert replay.json()["total"] == page["total"]


async def test_each_programme_lists_the_units_taking_part(world: World) -> None:
    units = world.clients["assignment"]
    one = (await units.get("/v1/units", params={"programme_id": P1})).json()
    two = (await units.get("/v1/units", params={"programme_id": P2})).json()
    assert {u["unit_id"] for u in one["items"]} == {"jw", "fgw", "yuzhong", "wanzhou"}
    assert {u["unit_id"] for u in two["items"]} == {"jw", "fgw", "yuzhong"}  # wanzhou takes no part in it
    everyone = (await units.get("/v1/units", params={"limit": 500})).json()
    assert {u["unit_id"] for u in everyone["items"]} >= {"jw", "fgw", "yuzhong", "wanzhou"}


@pytest.mark.parametrize("caller", ["city", "auditor", "verifier", "own"])
async def test_a_token_limited_to_one_programme_sees_nothing_of_the_other(world: World, caller: str) -> None:
    h = headers_for(world.keys, caller, programmes=(P2,))
    progress, audit, assignment = world.clients["progress"], world.clients["audit"], world.clients["assignment"]
    page = (await progress.get("/v1/status", params={"limit": 500}, headers=h)).json()
    assert page["items"] and {i["programme_id"] for i in page["items"]} == {P2}
    asked_for_other = (await progress.get("/v1/status", params={"programme_id": P1}, headers=h)).json()
    assert asked_for_other["total"] == 0
    r = await progress.get(f"/v1/assignments/{TARGET}", params={"source": "read_model"}, headers=h)
    assert r.status_code == 403 and P2 in r.json()["detail"]
    csv = await progress.get("/v1/status", params={"format": "csv"}, headers=h)
    assert only(P2, csv.content.decode("utf-8-sig"))
    assert (await progress.get(f"/v1/programmes/{P1}/scores", params={"year": 2026}, headers=h)).status_code == 403
    assert (await assignment.get(f"/v1/programmes/{P1}", headers=h)).status_code == 403
    assert (await assignment.get(f"/v1/programmes/{P2}", headers=h)).status_code == 200
    if caller == "auditor":
        entries = (await audit.get("/v1/audit/events", params={"limit": 1000}, headers=h)).json()
        assert entries["total"] == EVENTS[P2] and {e["programme_id"] for e in entries["items"]} == {P2}
        replay = (await audit.get("/v1/audit/replay", params={"as_of": "2030-01-01"}, headers=h)).json()
        assert replay["total"] == ASSIGNMENTS[P2] and {s["programme_id"] for s in replay["items"]} == {P2}
        history = await audit.get(f"/v1/audit/assignments/{TARGET}/history", headers=h)
        assert history.status_code == 403
        assert (await audit.get("/v1/audit/gaps", headers=h)).status_code == 403  # the whole ledger: not for it


async def test_a_limited_supervisors_dashboard_offers_only_its_programme(world: World) -> None:
    h = headers_for(world.keys, "city", programmes=(P2,))
    page = await world.clients["progress"].get("/dashboard", headers=h)
    assert page.status_code == 200 and P2 in page.text and P1 not in page.text
    export = await world.clients["progress"].get("/dashboard/export/status", params={"programme_id": P1}, headers=h)
    assert P1 not in export.content.decode("utf-8-sig", errors="replace")
