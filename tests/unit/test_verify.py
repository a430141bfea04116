"""The chain verifier: a good ledger passes, and every kind of tampering is named at its entry."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import events as ev
from contracts.base import Actor, UserRole
from services.audit.ledger import (
    GENESIS,
    canonical_bytes,
    canonical_json,
    chain,
    checkpoint_note,
    merkle_root,
    utc_text,
)
from services.audit.verify import COLUMN_FIELDS, ChainVerifier, Failure, StoredEntry

DEPT = Actor(sub="department:yuzhong", role=UserRole.DEPARTMENT, unit_id="yuzhong")
KEY = Ed25519PrivateKey.generate()
PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
FIELD = StoredEntry._fields.index


def texts(n: int) -> list[str]:
    out = []
    for i in range(n):
        fact = ev.ProgressReported(year=2026, period="2026-Q1", percent=12.5 + i, narrative="进展", indicator_values=[
            ev.IndicatorValue(name="绿色建筑占比", value=0.00001 * i)])  # fmt: skip
        at = dt.datetime(2026, 4, 1, 2, 3, 4, 5000 * i, tzinfo=dt.UTC)
        ids = {"assignment_id": "cq-2022-79.t14.yuzhong", "task_no": 14, "unit_id": "yuzhong"}
        event = ev.make_event(fact, seq=i, occurred_at=at, programme_id="cq-2022-79", actor=DEPT, **ids)  # type: ignore[arg-type]
        out.append(canonical_json(event))
    return out


def stored(canonicals: list[str]) -> list[list[Any]]:
    """Ledger entries (as lists, to tamper with) over these texts, chained and with their columns."""
    hashes = chain(canonicals)
    rows = []
    for i, text in enumerate(canonicals):
        e = json.loads(text)
        occurred = utc_text(dt.datetime.fromisoformat(e["occurred_at"]))
        prev = (hashes[i - 1] if i else GENESIS).hex()
        rows.append([i + 1, *(e.get(c) for c in COLUMN_FIELDS), occurred, prev, hashes[i].hex(), text])
    return rows


def rechained(rows: list[list[Any]]) -> list[list[Any]]:
    """Every hash recomputed over the texts as they are now: only columns, form or checkpoints can tell."""
    hashes = chain([str(r[-1]) for r in rows])
    for i, r in enumerate(rows):
        r[FIELD("prev_hash")] = (hashes[i - 1] if i else GENESIS).hex()
        r[FIELD("hash")] = hashes[i].hex()
    return rows


def signed(size: int, hashes: list[bytes], root: bytes | None = None) -> dict[str, Any]:
    """A checkpoint of the first `size` entries, signed as the service signs it."""
    root_hex, head, created = (root or merkle_root(hashes[:size])).hex(), hashes[size - 1].hex(), "2026-04-02T00:00:00Z"
    signature = base64.b64encode(KEY.sign(checkpoint_note(size, root_hex, head, created))).decode()
    return {"size": size, "root": root_hex, "head": head, "created_at": created, "signature": signature}


def run(rows: list[list[Any]], checkpoints: list[dict[str, Any]] | None = None, strict: bool = False) -> ChainVerifier:
    v = ChainVerifier(checkpoints or [], PUBLIC_PEM, strict=strict)
    for row in rows:
        if v.feed(StoredEntry(*row)):
            break
    v.finish()
    return v


def hashes_of(rows: list[list[Any]]) -> list[bytes]:
    return [bytes.fromhex(str(r[FIELD("hash")])) for r in rows]


@pytest.mark.parametrize("strict", [False, True])
def test_a_good_ledger_passes(strict: bool) -> None:
    rows = stored(texts(12))
    v = run(rows, strict=strict)
    assert v.failure is None and v.count == 12 and v.head == rows[-1][FIELD("hash")]


@pytest.mark.parametrize("column", [*COLUMN_FIELDS, "occurred_at"])
def test_every_column_that_differs_from_the_hashed_text_is_named(column: str) -> None:
    rows = stored(texts(6))
    rows[3][FIELD(column)] = 99 if column == "seq" else "elsewhere"
    failure = run(rows).failure
    assert failure is not None and failure.ledger_seq == 4 and f"column {column}" in failure.reason


def test_text_and_chain_tampering_is_named() -> None:
    rows = stored(texts(6))
    cases: list[tuple[list[list[Any]], int, str]] = []

    altered = [list(r) for r in rows]
    altered[2][-1] = altered[2][-1].replace("进展", "完成")
    cases.append((altered, 3, "altered"))

    for not_text in (None, 42, str(rows[4][-1]).encode()):  # NULL, or (on SQLite) stored as anything but text
        missing = [list(r) for r in rows]
        missing[4][-1] = not_text
        cases.append((missing, 5, "no canonical text"))

    surrogate = [list(r) for r in rows]
    surrogate[1][-1] = surrogate[1][-1].replace("进展", "\ud800")  # no UTF-8 text at all
    cases.append((surrogate, 2, "altered"))

    relinked = [list(r) for r in rows]
    relinked[3][FIELD("prev_hash")] = "00" * 32
    cases.append((relinked, 4, "chain"))

    cases.append(([rows[0], rows[2], rows[1], *rows[3:]], 2, "missing"))
    cases.append(([*rows[:3], *rows[4:]], 4, "missing"))

    for given, seq, words in cases:
        failure = run(given).failure
        assert failure is not None and failure.ledger_seq == seq and words in failure.reason, (seq, failure)


def test_strict_mode_names_a_rehashed_text_that_is_not_canonical() -> None:
    rows = stored(texts(5))
    original = str(rows[2][-1])
    for text in (original.replace('"percent":14.5', '"percent":14.50'), original.replace(",", ", ", 1),
                 original.replace('"进展"', '"\\u8fdb\\u5c55"'), original.replace("0.00002", "2e-5")):  # fmt: skip
        assert text != original
        forged = [list(r) for r in rows]
        forged[2][-1] = text
        rechained(forged)
        assert run(forged).failure is None  # the same event, so every column agrees: only the form differs
        failure = run(forged, strict=True).failure
        assert failure is not None and failure.ledger_seq == 3 and "canonical form" in failure.reason, text


def test_a_stored_text_that_is_not_a_json_object_fails() -> None:
    rows = stored(texts(3))
    for text in ("[1]", "not json", '"text"'):
        forged = [list(r) for r in rows]
        forged[1][-1] = text
        failure = run(rechained(forged)).failure
        assert failure is not None and failure.ledger_seq == 2 and "not a JSON object" in failure.reason


def test_an_event_without_a_column_field_reads_as_null() -> None:
    rows = stored(texts(6))
    for name, column in (("unit_id", None), ("unit_id", "yuzhong"), ("assignment_id", None)):
        event = json.loads(str(rows[2][-1]))
        del event[name]
        forged = [list(r) for r in rows]
        forged[2][-1] = canonical_bytes(event).decode()
        forged[2][FIELD(name)] = column
        failure = run(rechained(forged)).failure  # a NULL column agrees with a field that is not there
        assert (failure is None) == (column is None), (name, column, failure)


def test_signed_checkpoints_are_checked_at_their_size() -> None:
    rows = stored(texts(10))
    hashes = hashes_of(rows)
    good = [signed(3, hashes), signed(7, hashes)]
    v = run(rows, good)
    assert v.failure is None and v.checkpoints_checked == 2 and v.count == 10

    wrong_root = [good[0], signed(7, hashes, root=merkle_root(hashes[1:8]))]
    v = run(rows, wrong_root)
    assert v.failure == Failure(7, "the first 7 entries do not match the signed checkpoint's root")
    assert v.checkpoints_checked == 1

    v = run(rows[:5], good)  # truncated after a signed size
    assert v.failure is not None and v.failure.ledger_seq == 6 and "covers 7" in v.failure.reason

    forged = {**good[1], "root": "00" * 32}  # the signature no longer covers it
    v = ChainVerifier([good[0], forged], PUBLIC_PEM)
    assert v.failure == Failure(None, "checkpoint of size 7: bad signature")
    assert v.feed(StoredEntry(*rows[0])) == v.failure and v.count == 0


def test_a_rewritten_history_is_caught_by_the_checkpoint() -> None:
    rows = stored(texts(8))
    cp = signed(8, hashes_of(rows))
    forged = [list(r) for r in rows]
    forged[5][-1] = str(forged[5][-1]).replace("进展", "完成")
    rechained(forged)
    assert run(forged).failure is None and run(forged, strict=True).failure is None  # canonical, consistent
    failure = run(forged, [cp]).failure
    assert failure is not None and failure.ledger_seq == 8 and "checkpoint" in failure.reason


def test_each_checkpoint_with_its_own_key_when_none_is_given() -> None:
    rows = stored(texts(4))
    cp = {**signed(4, hashes_of(rows)), "public_key": PUBLIC_PEM.decode()}
    v = ChainVerifier([cp])
    assert not any(v.feed(StoredEntry(*r)) for r in rows) and v.finish() is None and v.checkpoints_checked == 1
    other = Ed25519PrivateKey.generate().public_key()
    other_pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert ChainVerifier([{**cp, "public_key": other_pem.decode()}]).failure is not None


def test_the_merkle_frontier_matches_the_root_at_every_size() -> None:
    rows = stored(texts(40))
    hashes = hashes_of(rows)
    v = run(rows, [signed(n, hashes) for n in range(1, 41)])
    assert v.failure is None and v.checkpoints_checked == 40
    assert v.frontier.size == 40 and v.frontier.root() == merkle_root(hashes)
