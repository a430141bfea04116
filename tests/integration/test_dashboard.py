"""The supervisors' dashboard over real HTTP: login form and cookie, 401/403, traffic lights, filters,
ranking, drill-down (timeline from the event stream when the audit service is away), the admin rebuild
endpoint and command. Synthetic events go through a real JetStream into the progress read model.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser

import httpx
import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from contracts.base import Role
from contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    Deadline,
    DeadlinesRecomputed,
    Event,
    MovedDeadline,
)
from contracts.ids import assignment_id
from contracts.subjects import READ_MODEL_DURABLE
from services.cli.main import app as cli
from services.progress import readmodel
from services.shared.db import make_engine, sqlite_url
from services.shared.lease import lock_file, try_exclusive_lock
from tests.e2e.support import EventFactory, Stack, running_stack, small_programme
from tests.support.cli_output import json_answer, without_logs
from tests.support.publishing import publish
from tests.support.waiting import caught_up

HTML = {"Accept": "text/html"}
# A published working calendar moves the green one's plan deadline by a day (the timeline says why).
PLAN = Deadline(key="annual_plan:2026", kind="annual_plan", due=dt.date(2026, 4, 2), year=2026)
MOVED = DeadlinesRecomputed(
    year=2026, source="国办发明电〔2025〕7号", opens=[PLAN],
    moved=[MovedDeadline(key=PLAN.key, old_due=dt.date(2026, 4, 1), new_due=PLAN.due)],
)  # fmt: skip
SCRIPT = "<script>alert('x')</script>"


class Tags(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def with_attr(self, name: str, tag: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.tags if name in a and (tag is None or t == tag)]


def dots(html: str) -> dict[str, str]:
    """assignment id -> traffic light, from the overview's dots."""
    return {a["data-assignment"]: a["data-light"] for a in Tags(html).with_attr("data-light", "a")}


@pytest.fixture(scope="module", autouse=True)
def env() -> Iterator[None]:
    """Before the module's stack starts (autouse fixtures come first), so its services read it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLICYFLOW_AUDIT_URL", "http://127.0.0.1:9")  # nothing listens: the stream fallback
        mp.setenv("TEMPORAL_UI_URL", "http://temporal-ui.example:8233")
        mp.setenv("DASHBOARD_REMOTE_TIMEOUT", "1")
        yield


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, nats_url: str, temporal_client: Client, temporal_address: str
) -> AsyncIterator[Stack]:
    tq = f"tq-dash-{uuid.uuid4().hex[:8]}"
    async with running_stack(
        tmp_path_factory.mktemp("dash"), nats_url, temporal_client, temporal_address, tq, worker=False
    ) as s:
        yield s


@pytest.fixture(scope="module")
async def scenario(stack: Stack) -> dict[str, str]:
    """Seven assignments, one of each light: green, grey, done, red, blue, yellow, cancelled."""
    body = small_programme()
    pid = body.programme_id
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(
            f"{stack.assignment_url}/v1/programmes",
            json=body.model_dump(mode="json"),
            headers=stack.headers("admin"),
        )
        assert r.status_code == 200, r.text
    events: list[Event] = []
    f = EventFactory(pid, 1, "jw")
    events += [f.created(role=Role.LEAD), f.accepted(), f.next(MOVED)]
    f = EventFactory(pid, 1, "fgw")
    events += [f.created(role=Role.COOPERATING)]
    f = EventFactory(pid, 1, "yuzhong")
    events += [f.created(), f.accepted(), f.reported(100.0), f.next(AssignmentCompleted(year=2026))]
    f = EventFactory(pid, 2, "wanzhou")
    events += [f.created(), f.accepted(), f.escalated("red")]
    f = EventFactory(pid, 2, "yuzhong")
    events += [f.created(), f.accepted(), f.escalated("blue")]
    f = EventFactory(pid, 3, "jw")
    events += [f.created(role=Role.LEAD), f.next(AssignmentCancelled(reason=SCRIPT))]
    f = EventFactory(pid, 3, "yuzhong")
    events += [f.created(), f.accepted(), f.escalated("yellow")]
    await caught_up(stack, await publish(stack.js, events))
    ids = {
        "green": assignment_id(pid, 1, "jw"),
        "grey": assignment_id(pid, 1, "fgw"),
        "done": assignment_id(pid, 1, "yuzhong"),
        "red": assignment_id(pid, 2, "wanzhou"),
        "blue": assignment_id(pid, 2, "yuzhong"),
        "cancelled": assignment_id(pid, 3, "jw"),
        "yellow": assignment_id(pid, 3, "yuzhong"),
    }
    return {"pid": pid, **ids}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.progress_url, timeout=30) as c:
        yield c


async def test_the_dashboard_asks_people_to_sign_in(stack: Stack, http: httpx.AsyncClient) -> None:
    r = await http.get("/dashboard?group=1", headers=HTML)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login?next=%2Fdashboard%3Fgroup%3D1"
    r = await http.get("/dashboard")
    assert r.status_code == 401 and r.json()["detail"] == "missing bearer token"
    r = await http.get("/dashboard/login", params={"next": "/dashboard?group=1"})
    assert r.status_code == 200 and 'id="login-form"' in r.text and 'id="password"' in r.text
    form = {"username": "x", "password": "y", "next": "https://evil.example/", "csrf": http.cookies["pf_signin"]}
    r = await http.post("/dashboard/login", data=form)
    assert r.status_code == 401 and 'value="/dashboard"' in r.text  # never an open redirect

    name, password = await stack.account("department", "yuzhong")
    form |= {"username": name, "password": password, "next": "/dashboard"}
    r = await http.post("/dashboard/login", data=form)
    assert r.status_code == 303  # signed in: a department's session is no supervisor's
    r = await http.get("/dashboard", headers=HTML)
    assert r.status_code == 403 and "仅供督查人员" in r.text


@pytest.mark.parametrize("role", ["department", "auditor", "verifier"])
async def test_non_supervisors_get_403(stack: Stack, http: httpx.AsyncClient, role: str) -> None:
    h = stack.headers(role, "yuzhong" if role == "department" else None)
    for path in ("/dashboard", "/dashboard/units", "/dashboard/assignments/x.t01.y"):
        r = await http.get(path, headers={**h, **HTML})
        assert r.status_code == 403 and 'id="error"' in r.text, path
        r = await http.get(path, headers=h)
        assert r.status_code == 403 and "needs supervisor" in r.json()["detail"], path


async def test_a_stale_session_cookie_sends_to_the_sign_in_page(http: httpx.AsyncClient) -> None:
    http.cookies.set("pf_session", "garbage", path="/")
    r = await http.get("/dashboard", headers=HTML)
    assert r.status_code == 303 and r.headers["location"].endswith("&expired=1")
    assert 'pf_session=""' in r.headers["set-cookie"]


async def test_overview_shows_one_light_per_assignment(
    stack: Stack, scenario: dict[str, str], http: httpx.AsyncClient
) -> None:
    r = await http.get("/dashboard", params={"programme_id": scenario["pid"]}, headers=stack.headers("supervisor"))
    assert r.status_code == 200, r.text
    assert dots(r.text) == {scenario[c]: c for c in ("green", "grey", "done", "red", "blue", "yellow", "cancelled")}
    page = r.text
    assert "推动城乡建设一体化发展" in page and "（二）转变城乡建设发展方式" in page  # from the assignment service
    assert "建设高品质绿色建筑" in page and 'id="task-3"' in page
    assert "渝中区（负责）· 已办结" in page  # tooltip: unit name, role, stage
    assert re.search(r'id="kpi-red".*?<b>1</b>', page, re.S)
    assert SCRIPT not in page
    # The urgent list: overdue ones only, red first.
    rows = [a["data-assignment"] for a in Tags(page).with_attr("data-assignment", "tr")]
    assert rows == [scenario["red"], scenario["yellow"], scenario["blue"]]


async def test_filters_narrow_the_overview(stack: Stack, scenario: dict[str, str], http: httpx.AsyncClient) -> None:
    sup = stack.headers("supervisor")

    async def lights(**params: str) -> dict[str, str]:
        r = await http.get("/dashboard", params={"programme_id": scenario["pid"], **params}, headers=sup)
        assert r.status_code == 200, r.text
        return dots(r.text)

    assert set(await lights(overdue="red")) == {scenario["red"]}
    assert set(await lights(overdue="any")) == {scenario["red"], scenario["blue"], scenario["yellow"]}
    assert set(await lights(stage="assigned")) == {scenario["grey"]}
    assert set(await lights(unit_id="yuzhong")) == {scenario[c] for c in ("done", "blue", "yellow")}
    assert set(await lights(group="2")) == {scenario["cancelled"], scenario["yellow"]}
    assert set(await lights(group="1", unit_id="wanzhou")) == {scenario["red"]}
    r = await http.get("/dashboard", params={"programme_id": scenario["pid"], "overdue": "red"}, headers=sup)
    assert 'id="task-1"' not in r.text and 'id="task-2"' in r.text  # tasks without a match are left out


@pytest.mark.parametrize(
    ("params", "note"),
    [
        ({"stage": "bogus"}, "已忽略无效的阶段筛选"),
        ({"overdue": "purple"}, "已忽略无效的督办筛选"),
        ({"group": "abc"}, "已忽略无效的任务组筛选"),
        ({"group": "-1"}, "已忽略无效的任务组筛选"),
        ({"unit_id": "<b>x</b>"}, "已忽略无效的单位筛选"),
        ({"programme_id": "nope"}, "没有方案 nope"),
    ],
)
async def test_bad_query_params_are_ignored_with_a_message(
    stack: Stack, scenario: dict[str, str], http: httpx.AsyncClient, params: dict[str, str], note: str
) -> None:
    query = {"programme_id": scenario["pid"], **params}
    r = await http.get("/dashboard", params=query, headers=stack.headers("supervisor"))
    assert r.status_code == 200 and note in r.text and "<b>x</b>" not in r.text
    assert len(dots(r.text)) >= 7 or params.get("programme_id") == "nope"


async def test_units_ranking_sorts_and_draws_bars(
    stack: Stack, scenario: dict[str, str], http: httpx.AsyncClient
) -> None:
    sup = stack.headers("supervisor")

    async def order(sort: str | None) -> tuple[list[str], str]:
        params = {"programme_id": scenario["pid"], **({"sort": sort} if sort else {})}
        r = await http.get("/dashboard/units", params=params, headers=sup)
        assert r.status_code == 200, r.text
        return [a["data-unit"] for a in Tags(r.text).with_attr("data-unit", "tr")], r.text

    # on time: fgw 1/1, jw 1/1 (the cancelled one does not count), yuzhong 1/3, wanzhou 0/1
    units, page = await order(None)
    assert units == ["fgw", "jw", "yuzhong", "wanzhou"]
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="unit-chart"' in page
    bars = [a["data-unit"] for a in Tags(page).with_attr("data-unit", "g")]
    assert bars == units
    assert 'class="seg seg-red" data-count="1"' in page and "33%" in page and "市住房城乡建委" in page
    assert (await order("-on_time"))[0] == ["wanzhou", "yuzhong", "fgw", "jw"]
    assert (await order("overdue"))[0] == ["yuzhong", "wanzhou", "fgw", "jw"]
    assert (await order("unit"))[0] == ["fgw", "jw", "wanzhou", "yuzhong"]
    assert (await order("-unit"))[0] == ["yuzhong", "wanzhou", "jw", "fgw"]
    units, page = await order("nonsense")
    assert units == ["fgw", "jw", "yuzhong", "wanzhou"] and "已忽略无效的排序方式" in page
    units, _ = await order("total")
    assert units[0] == "yuzhong"


async def test_drill_down_from_the_stream_when_the_audit_service_is_away(
    stack: Stack, scenario: dict[str, str], http: httpx.AsyncClient
) -> None:
    sup = stack.headers("supervisor")
    r = await http.get(f"/dashboard/assignments/{scenario['red']}", headers=sup)
    assert r.status_code == 200, r.text
    tags = Tags(r.text)
    assert [a["data-source"] for a in tags.with_attr("data-source")] == ["stream"]
    assert [a["data-type"] for a in tags.with_attr("data-type", "li")] == [
        "AssignmentCreated",
        "AssignmentAccepted",
        "SupervisionEscalated",
    ]
    link = tags.with_attr("href", "a")
    wf = f"assignment-{scenario['red']}"
    assert {
        "id": "temporal-link",
        "href": f"http://temporal-ui.example:8233/namespaces/default/workflows/{wf}",
        "target": "_blank",
        "rel": "noopener",
    } in link
    assert 'data-light="red"' in r.text and "万州区" in r.text

    r = await http.get(f"/dashboard/assignments/{scenario['green']}", headers=sup)
    line = "依 国办发明电〔2025〕7号 公布的 2026 年放假安排重新计算期限：annual_plan:2026 2026-04-01 → 2026-04-02"
    assert r.status_code == 200 and line in r.text
    r = await http.get(f"/dashboard/assignments/{scenario['done']}", headers=sup)
    assert r.status_code == 200 and "进度 100%" in r.text and "done some" in r.text
    r = await http.get(f"/dashboard/assignments/{scenario['cancelled']}", headers=sup)
    assert r.status_code == 200 and SCRIPT not in r.text and "&lt;script&gt;" in r.text

    for missing in (f"{scenario['pid']}.t09.nowhere", "not-an-id", "%3Cscript%3E"):
        r = await http.get(f"/dashboard/assignments/{missing}", headers={**sup, **HTML})
        assert r.status_code == 404 and "未找到任务" in r.text and "<script>" not in r.text


@pytest.mark.usefixtures("scenario")
async def test_rebuild_endpoint_and_command_give_the_same_rows(stack: Stack, http: httpx.AsyncClient) -> None:
    engine = make_engine(sqlite_url(stack.tmp / "progress.sqlite"))
    try:
        before = await readmodel.snapshot(engine)
        r = await http.post("/v1/admin/rebuild-read-models", headers=stack.headers("department", "jw"))
        assert r.status_code == 403
        assert (await http.post("/v1/admin/rebuild-read-models")).status_code == 401
        # Another worker process (PROGRESS_WORKERS > 1) rebuilding holds this flock: refused, 409.
        held = try_exclusive_lock(lock_file(sqlite_url(stack.tmp / "progress.sqlite"), f"{READ_MODEL_DURABLE}.rebuild"))
        assert held is not None
        try:
            r = await http.post("/v1/admin/rebuild-read-models", headers=stack.headers("admin"))
            assert r.status_code == 409 and "already running" in r.text
        finally:
            held.close()

        r = await http.post("/v1/admin/rebuild-read-models", headers=stack.headers("admin"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert lines[0] == {"started": True} and lines[-1]["finished"] is True
        assert lines[-1]["assignments"] == len(before) and lines[-2]["done"] == lines[-2]["total"]
        assert await readmodel.snapshot(engine) == before

        token = stack.headers("admin")["Authorization"].removeprefix("Bearer ")
        args = ["admin", "rebuild-read-models", "--yes", "--url", stack.progress_url, "--token", token]
        res = await asyncio.to_thread(CliRunner().invoke, cli, args)
        assert res.exit_code == 0, res.output
        assert f"{len(before)} assignments" in res.output and "rebuilding read models" in res.output
        assert await readmodel.snapshot(engine) == before

        dept = stack.headers("department", "jw")["Authorization"].removeprefix("Bearer ")
        res = await asyncio.to_thread(CliRunner().invoke, cli, [*args[:-1], dept])
        assert res.exit_code == 1 and "error: 403" in res.output

        # --json: the service's summary line on stdout, no bar (stderr is not a terminal), a refusal as JSON.
        res = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--json"])
        assert res.exit_code == 0, res.output
        summary = json_answer(res.stdout)
        assert summary["finished"] is True and summary["assignments"] == len(before) and res.stderr == ""
        res = await asyncio.to_thread(CliRunner().invoke, cli, [*args[:-1], dept, "--json"])
        assert res.exit_code == 1 and without_logs(res.stdout) == "" and json_answer(res.stderr)["status"] == 403
    finally:
        await engine.dispose()
