"""The verifier's fast paths give the answers of the rules they stand in for, and every tamper still fails.

`canonical_event` must say "canonical" exactly when `ledger.is_canonical` does, `utc_column` must
be `utc_text(fromisoformat(...))`, and `feed_row` must fail where `feed(entry, columns=True)` fails,
with the same reason.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import events as ev
from contracts.base import Actor, UserRole
from services.audit.ledger import GENESIS, canonical_json, canonical_text, chain, is_canonical, merkle_root, utc_text
from services.audit.verify import (
    COLUMN_FIELDS,
    ROW_COLUMNS,
    ChainVerifier,
    CheckpointRef,
    Failure,
    _floats_are_repr,
    _utc,
    canonical_event,
    utc_column,
)

DEPT = Actor(sub="department:yuzhong", role=UserRole.DEPARTMENT, unit_id="yuzhong")


def agrees(text: str) -> None:
    """canonical_event on the UTF-8 of `text` accepts exactly what is_canonical (and a dict) accepts."""
    expected = is_canonical(text) and isinstance(json.loads(text), dict)
    got = canonical_event(text.encode("utf-8", "surrogatepass"))
    assert (got is not None) == expected, text
    if got is not None:
        assert got == json.loads(text)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_canonical_event_agrees_with_is_canonical(value: dict[str, Any]) -> None:
    stdlib = canonical_text(value)
    agrees(stdlib)  # canonical by construction
    try:
        agrees(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())  # differs where floats print differently
    except orjson.JSONEncodeError:
        pass  # an integer beyond 64 bits
    agrees(json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":")))  # \\u escapes
    agrees(json.dumps(value, ensure_ascii=False))  # spaces, unsorted


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1e-05}',  # Python's repr, orjson would write 0.00001
        '{"a":0.00001}',  # orjson's form: not canonical
        '{"a":2.5e-7}',
        '{"a":2.5e-07}',
        '{"a":1e+16}',
        '{"a":1e16}',
        '{"a":1E+16}',
        '{"a":[1.0,0.1,-0.0,100.0]}',
        '{"a":1.50}',
        '{"a":1}',
        '{"a":-0}',
        '{"a":NaN}',
        '{"a":Infinity}',
        '{"a":1e999}',
        '{"a":18446744073709551616}',  # beyond 64 bits: the stdlib decides
        '{"a":"\\ud800"}',  # a lone surrogate escape
        '{"a":"\\u00e9"}',
        '{"a":"é"}',
        '{"a":"\\n\\t\\u0001"}',
        '{"a":1,"a":2}',
        '{"b":1,"a":2}',
        '{"a":1} ',
        '\ufeff{"a":1}',
        "[1,2]",
        "1.5",
        '"x"',
        '{"hash":"0e0e5d3e-05","x":"1.5,2e-5","y":":1e-05,"}',  # marks inside strings only
        '{"x":":1e-05,","a":0.5}',
        '{"x":' + "[" * 300 + "]" * 300 + "}",  # deeper than orjson nests
    ],
)
def test_canonical_event_on_the_edges(text: str) -> None:
    agrees(text)


def test_canonical_event_refuses_bytes_that_are_not_utf8() -> None:
    assert canonical_event(b'{"a":"\xff"}') is None


def test_float_marks_inside_strings_are_not_taken_for_numbers() -> None:
    digest = "b6213ed196dcf66612b66f53728267abb5383317ad0d62520ce0f7113e291570"
    assert _floats_are_repr(json.dumps({"sha256": digest, "v": 92.0}, separators=(",", ":")).encode())
    assert not _floats_are_repr(b'{"v":0.00001}')
    assert not _floats_are_repr(b'{"v":[1,2e5]}')


def test_every_random_double_is_judged_like_the_stdlib() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        x = rng.choice([rng.uniform(-1e6, 1e6), 10 ** rng.uniform(-30, 30)])
        x = rng.choice([x, math.ldexp(rng.random(), rng.randint(-1074, 1023))])
        for text in (f'{{"v":{x!r}}}', f'{{"v":{orjson.dumps(x).decode()}}}'):
            agrees(text)


times = st.one_of(
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat(sep=" ")),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?Z\Z"),
    st.text(max_size=30),
)


@settings(max_examples=500, deadline=None)
@given(times)
def test_utc_column_is_utc_text_of_the_parsed_time(value: str) -> None:
    assert utc_column(value) == _utc(value)


def test_utc_column_on_the_edges() -> None:
    edges: list[Any] = ["2026-02-30T00:00:00Z", "2026-01-05T24:00:00Z", "2026-01-05T23:59:60Z", "0000-01-01T00:00:00Z"]
    edges += ["9999-12-31T23:59:59.999999Z", "2026-01-05T08:00:00.5Z", "2026-01-05 08:00:00Z", None, 5]
    for value in edges:
        assert utc_column(value) == _utc(value)


# --- feed_row against feed ------------------------------------------------------------------


def ledger_rows(n: int) -> list[list[Any]]:
    texts = []
    for i in range(n):
        fact = ev.ProgressReported(year=2026, period="2026-Q1", percent=12.5 + i, narrative="进展", indicator_values=[
            ev.IndicatorValue(name="绿色建筑占比", value=0.00001 * i)])  # fmt: skip
        at = dt.datetime(2026, 4, 1, 2, 3, 4, 5000 * i, tzinfo=dt.UTC)
        ids = {"assignment_id": "cq-2022-79.t14.yuzhong", "task_no": 14, "unit_id": "yuzhong"}
        event = ev.make_event(fact, seq=i, occurred_at=at, programme_id="cq-2022-79", actor=DEPT, **ids)  # type: ignore[arg-type]
        texts.append(canonical_json(event))
    hashes = chain(texts)
    rows = []
    for i, text in enumerate(texts):
        e = json.loads(text)
        occurred = utc_text(dt.datetime.fromisoformat(e["occurred_at"]))
        prev = (hashes[i - 1] if i else GENESIS).hex()
        rows.append([i + 1, *(e[c] for c in COLUMN_FIELDS), occurred, prev, hashes[i].hex(), text])
    return rows


def both(rows: list[list[Any]], as_bytes: bool = True) -> Failure | None:
    """Run feed_rows (in pages of 4), feed_row and feed(columns=True) over the same rows; all must agree."""
    by_page, by_row, by_entry = ChainVerifier(), ChainVerifier(), ChainVerifier()
    as_given = []
    for row in rows:
        data = row[-1].encode("utf-8", "surrogatepass") if as_bytes and isinstance(row[-1], str) else row[-1]
        as_given.append((*row[:-1], data))
        by_row.feed_row(as_given[-1])
        by_entry.feed(dict(zip(ROW_COLUMNS, row, strict=True)), columns=True)
    for lo in range(0, len(as_given), 4):
        by_page.feed_rows(as_given[lo : lo + 4])
    for v in (by_page, by_row):
        assert v.failure == by_entry.failure and v.count == by_entry.count and v.head == by_entry.head
    return by_row.failure


def test_feed_row_accepts_a_good_ledger_as_feed_does() -> None:
    rows = ledger_rows(12)
    assert both(rows) is None
    assert both(rows, as_bytes=False) is None  # str text (PostgreSQL's driver) as well as bytes (SQLite's)


@pytest.mark.parametrize("column", [*COLUMN_FIELDS, "occurred_at"])
def test_every_column_that_differs_from_the_hashed_text_is_named(column: str) -> None:
    rows = ledger_rows(6)
    at = ROW_COLUMNS.index(column)
    rows[3][at] = 99 if column == "seq" else "elsewhere"
    failure = both(rows)
    assert failure is not None and failure.ledger_seq == 4 and f"column {column}" in failure.reason


def test_text_tampering_fails_on_both_paths() -> None:
    rows = ledger_rows(6)
    altered = [list(r) for r in rows]
    altered[2][-1] = altered[2][-1].replace("进展", "完成")
    assert (f := both(altered)) is not None and f.ledger_seq == 3 and "altered" in f.reason

    missing = [list(r) for r in rows]
    missing[4][-1] = None  # NULL, or (on SQLite) a value stored as anything but text
    assert (f := both(missing)) is not None and f.ledger_seq == 5 and "no canonical text" in f.reason

    surrogate = [list(r) for r in rows]
    surrogate[1][-1] = surrogate[1][-1].replace("进展", "\ud800")  # no UTF-8 text at all
    f = both(surrogate, as_bytes=False)
    assert f is not None and f.ledger_seq == 2 and "altered" in f.reason

    relinked = [list(r) for r in rows]
    relinked[3][ROW_COLUMNS.index("prev_hash")] = "00" * 32
    assert (f := both(relinked)) is not None and f.ledger_seq == 4 and "chain" in f.reason

    reordered = [rows[0], rows[2], rows[1], *rows[3:]]
    assert (f := both(reordered)) is not None and f.ledger_seq == 2 and "missing" in f.reason


def test_a_rehashed_text_that_is_not_canonical_fails_on_both_paths() -> None:
    rows = ledger_rows(5)
    for text in (rows[2][-1].replace('"percent":14.5', '"percent":14.50'), rows[2][-1].replace(",", ", ", 1),
                 rows[2][-1].replace("2e-05", "0.00002")):  # fmt: skip
        assert text != rows[2][-1]
        forged = [list(r) for r in rows]
        forged[2][-1] = text
        hashes = chain([str(r[-1]) for r in forged])
        for i, r in enumerate(forged):  # every hash recomputed: only the canonical form can tell
            r[ROW_COLUMNS.index("prev_hash")] = (hashes[i - 1] if i else GENESIS).hex()
            r[ROW_COLUMNS.index("hash")] = hashes[i].hex()
        f = both(forged)
        assert f is not None and f.ledger_seq == 3 and "canonical form" in f.reason, text


def test_feed_rows_checks_signed_checkpoints_inside_a_page() -> None:
    rows = [(*r[:-1], str(r[-1]).encode()) for r in ledger_rows(10)]
    hashes = [bytes.fromhex(str(r[ROW_COLUMNS.index("hash")])) for r in rows]
    good = [CheckpointRef(n, merkle_root(hashes[:n]).hex(), hashes[n - 1].hex()) for n in (3, 7)]
    v = ChainVerifier(good)
    assert v.feed_rows(rows) is None and v.finish() is None and v.checkpoints_checked == 2 and v.count == 10
    bad = [good[0], CheckpointRef(7, merkle_root(hashes[1:8]).hex(), hashes[6].hex())]
    v = ChainVerifier(bad)
    failure = v.feed_rows(rows)
    assert (
        failure is not None
        and failure.ledger_seq == 7
        and "checkpoint" in failure.reason
        and v.checkpoints_checked == 1
    )
    v = ChainVerifier([*good, CheckpointRef(12, "00" * 32, "00" * 32)])
    assert v.feed_rows(rows) is None
    failure = v.finish()
    assert failure is not None and "covers 12" in failure.reason


def test_an_event_without_a_column_field_is_judged_on_every_path() -> None:
    rows = ledger_rows(6)
    texts = [str(r[-1]) for r in rows]
    for name, column in (("unit_id", None), ("unit_id", "yuzhong"), ("assignment_id", None)):
        event = json.loads(texts[2])
        del event[name]
        forged_texts = [*texts[:2], canonical_text(event), *texts[3:]]
        hashes = chain(forged_texts)
        forged = [list(r) for r in rows]
        forged[2][-1] = forged_texts[2]
        forged[2][ROW_COLUMNS.index(name)] = column
        for i, r in enumerate(forged):
            r[ROW_COLUMNS.index("prev_hash")] = (hashes[i - 1] if i else GENESIS).hex()
            r[ROW_COLUMNS.index("hash")] = hashes[i].hex()
        failure = both(forged)  # a missing field reads as null, as before: a NULL column agrees with it
        assert (failure is None) == (column is None), (name, column, failure)


def test_feed_rows_keeps_the_merkle_frontier_of_every_size() -> None:
    """The inlined frontier append gives ledger.merkle_root at every size, across pages and the slow path."""
    rows = [(*r[:-1], str(r[-1]).encode()) for r in ledger_rows(40)]
    rows[9] = (*rows[9][:-1], rows[9][-1].decode())  # str text: taken by feed_row, the frontier shared
    hashes = [bytes.fromhex(str(r[ROW_COLUMNS.index("hash")])) for r in rows]
    refs = [CheckpointRef(n, merkle_root(hashes[:n]).hex(), hashes[n - 1].hex()) for n in range(1, 41)]
    for page in (1, 3, 7, 40):
        v = ChainVerifier(refs)
        for lo in range(0, len(rows), page):
            assert v.feed_rows(rows[lo : lo + page]) is None
        assert v.finish() is None and v.checkpoints_checked == 40
        assert v.frontier.size == 40 and v.frontier.root() == merkle_root(hashes)
