"""Kept answers (services/progress/answers.py): a status page or a read-model detail is served
again only while the read model's position has not moved, on a real database (SQLite, and
PostgreSQL: tests/databases.py) written by the projection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from contracts.base import UserRole
from services.progress import readmodel
from services.progress.answers import ENTRY_OVERHEAD, AnswerCache
from services.progress.app import create_app
from services.progress.settings import ProgressSettings
from services.progress.store import create_tables
from services.shared.auth import issue_token, load_public_key
from services.shared.db import make_engine
from tests.databases import TestDatabase
from tests.e2e.support import EventFactory

PID = "answers"


def test_a_new_version_drops_every_answer() -> None:
    cache = AnswerCache(1000)
    assert cache.get(1, "a") is None
    cache.put(1, "a", b"one")
    assert cache.get(1, "a") == b"one"
    assert cache.get(2, "a") is None and len(cache) == 0 and cache.weight == 0
    cache.put(1, "a", b"stale")  # computed at a version that has moved on: not kept
    assert cache.get(2, "a") is None and len(cache) == 0


def test_least_recently_used_answers_go_first_by_weight() -> None:
    cache = AnswerCache(2 * ENTRY_OVERHEAD + 10)
    cache.get(7, None)
    assert cache.put(7, "a", b"aaaa") and cache.put(7, "b", b"bbbb")
    assert cache.get(7, "a") == b"aaaa"  # now the most recent
    cache.put(7, "c", b"cccc")  # three entries weigh more than the bound: "b" goes
    assert (cache.get(7, "b"), cache.get(7, "a"), cache.get(7, "c")) == (None, b"aaaa", b"cccc")
    assert cache.weight == 2 * ENTRY_OVERHEAD + 8
    cache.put(7, "a", b"a")  # replaced, not counted twice
    assert cache.weight == 2 * ENTRY_OVERHEAD + 5
    assert not cache.put(7, "huge", b"x" * (ENTRY_OVERHEAD + 11))  # heavier than the bound: not kept
    assert cache.get(7, "huge") is None and len(cache) == 2


def test_many_small_answers_stay_inside_the_bound() -> None:
    """Empty pages of made-up filters weigh almost nothing each; their keys and slots do."""
    cache = AnswerCache(10 * ENTRY_OVERHEAD)
    cache.get(1, None)
    for i in range(1000):
        cache.put(1, ("status", (("unit", f"nobody-{i}"),), 50, 0), b'{"items":[],"total":0}')
    assert len(cache) < 10 and cache.weight <= 10 * ENTRY_OVERHEAD


@pytest.fixture
async def reader_and_engine(database: TestDatabase) -> AsyncIterator[tuple[readmodel.StatusReader, Any]]:
    engine = make_engine(database.url("progress"))
    await create_tables(engine)
    reader = readmodel.StatusReader(engine, cache_bytes=1 << 20)
    yield reader, engine
    reader.close()
    await engine.dispose()


async def test_a_page_is_kept_until_the_projection_commits(reader_and_engine: Any) -> None:
    reader, engine = reader_and_engine
    first = EventFactory(PID, 1, "unit1")
    await readmodel.apply_messages(engine, [(1, first.created().model_dump_json().encode())])
    f = readmodel.StatusFilter(programme_id=PID)
    miss = await reader.page_json(f, 50, 0)
    hit = await reader.page_json(f, 50, 0)
    assert (miss.cache, hit.cache) == ("miss", "hit") and hit.body == miss.body
    assert orjson.loads(hit.body)["total"] == 1
    assert (await reader.page_json(f, 10, 0)).cache == "miss"  # another page is another answer
    assert (await reader.page_json(f, 50, 0, fresh=True)).cache == "bypass"

    second = EventFactory(PID, 2, "unit2")
    await readmodel.apply_messages(engine, [(2, second.created().model_dump_json().encode())])
    after = await reader.page_json(f, 50, 0)
    assert after.cache == "miss" and orjson.loads(after.body)["total"] == 2
    # the answer is the one an uncached reader gives
    plain = readmodel.StatusReader(engine)
    try:
        assert plain.cache is None
        assert (await plain.page_json(f, 50, 0)) == (after.body, None, False)
    finally:
        plain.close()


async def test_a_computed_page_is_kept_under_the_position_it_was_read_at(reader_and_engine: Any) -> None:
    reader, engine = reader_and_engine
    events = [EventFactory(PID, 1, u).created() for u in ("unit1", "unit2")]
    await readmodel.apply_messages(engine, [(i + 1, e.model_dump_json().encode()) for i, e in enumerate(events)])
    rows, total, position = await readmodel.positioned_rows(engine, readmodel.StatusFilter(), 50, 0)
    assert (len(rows), total, position) == (2, 2, 2)
    none = readmodel.StatusFilter(unit_id="unit9")  # no row: the total and the position come all the same
    assert await readmodel.positioned_rows(engine, none, 50, 0) == ([], 0, 2)
    computed = await reader.page_json(none, 50, 0, fresh=True)
    assert (computed.cache, computed.stored) == ("miss", True)
    assert (await reader.page_json(none, 50, 0)).cache == "hit"  # kept under position 2, which the read finds


async def test_other_filters_are_other_answers(reader_and_engine: Any) -> None:
    reader, engine = reader_and_engine
    events = [EventFactory(PID, 1, u).created() for u in ("unit1", "unit2")]
    await readmodel.apply_messages(engine, [(i + 1, e.model_dump_json().encode()) for i, e in enumerate(events)])
    one = await reader.page_json(readmodel.StatusFilter(unit_id="unit1"), 50, 0)
    two = await reader.page_json(readmodel.StatusFilter(unit_id="unit2"), 50, 0)
    assert (one.cache, two.cache) == ("miss", "miss")
    units = [[i["unit_id"] for i in orjson.loads(a.body)["items"]] for a in (one, two)]
    assert units == [["unit1"], ["unit2"]]


@pytest.fixture
async def progress(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any, dict[str, str]]]:
    settings = ProgressSettings(var_dir=tmp_path, assignment_url="http://127.0.0.1:9")
    app = create_app(settings)
    engine = make_engine(settings.db_url())
    await create_tables(engine)
    reader = readmodel.StatusReader(engine, int(settings.answer_cache_mib * 2**20))
    # The lifespan (Temporal, NATS) is not run: the state the reads use is set here.
    app.state.settings, app.state.public_key = settings, load_public_key(settings.keys())
    app.state.engine, app.state.status_reader = engine, reader
    auth = {"Authorization": f"Bearer {issue_token(settings.keys(), UserRole.SUPERVISOR)}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://progress") as http:
        yield http, engine, auth
    reader.close()
    await engine.dispose()


async def test_the_api_says_where_an_answer_came_from(progress: Any) -> None:
    http, engine, auth = progress
    f = EventFactory(PID, 3, "unit3")
    aid = f.assignment_id
    gone = await http.get(f"/v1/assignments/{aid}?source=read_model", headers=auth)
    assert gone.status_code == 404
    await readmodel.apply_messages(engine, [(1, f.created().model_dump_json().encode())])

    for url in ("/v1/status?limit=5", f"/v1/assignments/{aid}?source=read_model"):
        a = await http.get(url, headers=auth)
        b = await http.get(url, headers=auth)
        assert (a.status_code, b.status_code) == (200, 200) and a.content == b.content, url
        assert a.headers["cache-status"] == "policyflow-progress; fwd=miss; stored", url
        assert b.headers["cache-status"] == "policyflow-progress; hit", url
        c = await http.get(url, headers={**auth, "Cache-Control": "no-cache"})
        assert c.headers["cache-status"] == "policyflow-progress; fwd=request; stored" and c.content == a.content

    await readmodel.apply_messages(engine, [(2, f.accepted().model_dump_json().encode())])
    r = await http.get(f"/v1/assignments/{aid}?source=read_model", headers=auth)
    assert r.headers["cache-status"].endswith("fwd=miss; stored") and r.json()["stage"] == "planning"
    assert (await http.get("/v1/status?limit=5", headers=auth)).json()["items"][0]["stage"] == "planning"
    # refused requests are refused before any answer is looked up
    assert (await http.get("/v1/status?limit=0", headers=auth)).status_code == 422
    assert (await http.get("/v1/status?limit=5")).status_code == 401


async def test_a_department_gets_its_own_units_answer(progress: Any, tmp_path: Path) -> None:
    http, engine, auth = progress
    events = [EventFactory(PID, 4, u).created() for u in ("unit4", "unit5")]
    await readmodel.apply_messages(engine, [(i + 1, e.model_dump_json().encode()) for i, e in enumerate(events)])
    sup = await http.get("/v1/status", headers=auth)
    keys = ProgressSettings(var_dir=tmp_path).keys()
    dept = {"Authorization": f"Bearer {issue_token(keys, UserRole.DEPARTMENT, 'unit5')}"}
    mine = await http.get("/v1/status", headers=dept)  # the same URL, after the supervisor's answer was kept
    assert sup.json()["total"] == 2 and mine.headers["cache-status"].endswith("fwd=miss; stored")
    assert [i["unit_id"] for i in mine.json()["items"]] == ["unit5"]
    assert [i["unit_id"] for i in (await http.get("/v1/status", headers=dept)).json()["items"]] == ["unit5"]
    assert (await http.get("/v1/status", headers=auth)).json()["total"] == 2


@pytest.mark.parametrize(("headers", "fresh"), [
    ({"Cache-Control": "no-cache"}, True), ({"Cache-Control": "max-age=0, No-Cache"}, True),
    ({"Pragma": "no-cache"}, True), ({"Cache-Control": "no-cache-please"}, False),
    ({"Cache-Control": "max-age=0"}, False), ({"Cache-Control": ",,=;"}, False), ({}, False),
])  # fmt: skip
async def test_only_no_cache_asks_for_a_new_answer(progress: Any, headers: dict[str, str], fresh: bool) -> None:
    http, engine, auth = progress
    await readmodel.apply_messages(engine, [(1, EventFactory(PID, 5, "unit6").created().model_dump_json().encode())])
    await http.get("/v1/status", headers=auth)
    r = await http.get("/v1/status", headers={**auth, **headers})
    assert r.status_code == 200
    want = "fwd=request; stored" if fresh else "hit"
    assert r.headers["cache-status"] == f"policyflow-progress; {want}"


async def test_an_answer_too_big_to_keep_says_so(reader_and_engine: Any) -> None:
    reader, engine = reader_and_engine
    await readmodel.apply_messages(engine, [(1, EventFactory(PID, 6, "unit7").created().model_dump_json().encode())])
    small = readmodel.StatusReader(engine, cache_bytes=ENTRY_OVERHEAD + 40)
    try:
        f = readmodel.StatusFilter()
        answers = [await small.page_json(f, 50, 0) for _ in range(2)]
        assert [(a.cache, a.stored) for a in answers] == [("miss", False), ("miss", False)]
        assert readmodel.StatusReader(engine, cache_bytes=0).cache is None
    finally:
        small.close()


def test_the_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSWER_CACHE_MIB", "0")
    assert ProgressSettings().answer_cache_mib == 0
    monkeypatch.setenv("ANSWER_CACHE_MIB", "-1")
    with pytest.raises(ValueError, match="greater than or equal"):
        ProgressSettings()
