"""The audit ledger's pure cryptography against hand-computed values and the RFC 6962 examples."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

import pytest

from contracts import events as ev
from contracts.base import Actor, UserRole
from services.audit.ingest import prepare
from services.audit.ledger import (
    EMPTY_ROOT,
    GENESIS,
    Frontier,
    canonical_bytes,
    canonical_json,
    chain,
    checkpoint_note,
    consistency_ranges,
    entry_hash,
    inclusion_ranges,
    is_canonical,
    leaf_hash,
    merkle_root,
    mth,
    node_hash,
    perfect_pieces,
    utc_text,
    verify_consistency,
    verify_inclusion,
)
from services.shared.consumer import Message

DEPT = Actor(sub="department:yuzhong", role=UserRole.DEPARTMENT, unit_id="yuzhong")


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves(n: int) -> list[bytes]:
    """Leaf hashes of n made-up entries (entry hash = sha of its index)."""
    return [leaf_hash(sha(bytes([i]))) for i in range(n)]


def subtree(ls: list[bytes], lo: int, hi: int) -> bytes:
    return mth(ls[lo:hi])


# --- canonical form and chain ------------------------------------------------------------


def test_canonical_form_is_jcs_of_the_json_dump() -> None:
    event = ev.make_event(
        ev.ProgressReported(year=2026, period="2026-Q1", percent=30, narrative="进展顺利"),
        seq=5,
        occurred_at=dt.datetime(2026, 4, 1, 2, 3, 4, tzinfo=dt.UTC),
        programme_id="cq-2022-79",
        actor=DEPT,
        assignment_id="cq-2022-79.t14.yuzhong",
        task_no=14,
        unit_id="yuzhong",
    )
    text = canonical_json(event)
    assert text == (
        '{"actor":{"role":"department","sub":"department:yuzhong","unit_id":"yuzhong"},'
        '"assignment_id":"cq-2022-79.t14.yuzhong","event_id":"cq-2022-79.t14.yuzhong#000005",'
        '"occurred_at":"2026-04-01T02:03:04Z","payload":{"closes":[],"evidence":[],"indicator_values":[],'
        '"narrative":"进展顺利","opens":[],"percent":30,"period":"2026-Q1","year":2026},'
        '"programme_id":"cq-2022-79","schema_version":1,"seq":5,"task_no":14,'
        '"type":"ProgressReported","unit_id":"yuzhong"}'
    )
    assert text.encode() == canonical_bytes(event.model_dump(mode="json"))
    assert is_canonical(text.encode())
    assert ev.Event.model_validate_json(text) == event  # the canonical text is the event


def test_canonical_bytes_follow_the_rfc_8785_examples() -> None:
    # RFC 8785 3.2.3: keys sorted by UTF-16 code units (the emoji's surrogates sort before U+FB33).
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    assert canonical_bytes(dict.fromkeys(keys, 0)).decode() == (
        '{"\\r":0,"1":0,"\u0080":0,"\u00f6":0,"\u20ac":0,"\U0001f600":0,"\ufb33":0}'
    )
    # RFC 8785 3.2.2.3 and appendix B: numbers as ECMAScript prints them.
    numbers = {333333333.33333329: "333333333.3333333", 1e30: "1e+30", 4.50: "4.5", 2e-3: "0.002", 1e-27: "1e-27",
               30.0: "30", -0.0: "0", 1e-7: "1e-7", 1e21: "1e+21", 1e20: "100000000000000000000"}  # fmt: skip
    for number, text in numbers.items():
        assert canonical_bytes([number]) == f"[{text}]".encode(), number
    # Only the escapes JCS requires; everything else as itself in UTF-8.
    assert canonical_bytes(['\u000f\n"\\/é中']) == '["\\u000f\\n\\"\\\\/é中"]'.encode()


def test_what_jcs_cannot_represent_is_refused() -> None:
    for value in (2**53, -(2**53), float("nan"), float("inf"), "\ud800", {1: "a key that is not text"}):
        with pytest.raises(ValueError):
            canonical_bytes({"x": value})
    assert canonical_bytes({"x": 2**53 - 1}) == b'{"x":9007199254740991}'


def test_ingest_sets_aside_an_event_jcs_cannot_represent() -> None:
    event = ev.make_event(
        ev.AssignmentAccepted(year=2026), seq=0, occurred_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
        programme_id="p", actor=DEPT, assignment_id="p.t1.u", task_no=1, unit_id="u",
    )  # fmt: skip
    good = event.model_dump_json()
    huge = good.replace('"year":2026', f'"year":{2**53 + 1}')
    prepared = prepare([Message(1, "s", good.encode()), Message(2, "s", huge.encode())])
    assert [e.stream_seq for e in prepared.events] == [1]
    assert [(r["stream_seq"], r["reason"]) for r in prepared.bad] == [
        (2, f"{2**53 + 1} exceeds safe integer domain for JSON floats")
    ]


@pytest.mark.parametrize(
    "text",
    [
        '{"b":1,"a":2}',  # keys out of order
        '{"a": 1}',  # whitespace
        '{"a":30.0}',  # not how ECMAScript prints 30
        '{"a":1E-7}',
        '{"a":"\\u00e9"}',  # an escape JCS does not use
        '{"a":1,"a":1}',  # a duplicate key
        '{"a":NaN}',
        "not json",
        '{"a":9007199254740993}',  # beyond 2**53: no double holds it
    ],
)
def test_is_canonical_refuses_every_other_spelling(text: str) -> None:
    assert not is_canonical(text.encode())


def test_is_canonical_accepts_what_canonical_bytes_writes() -> None:
    values: list[object] = [{"a": 1e16, "b": [1.5, -3, 1e-7, True, None]}, {"é": "中", "": {}}, [], "x"]
    for value in values:
        assert is_canonical(canonical_bytes(value))
    assert not is_canonical(b'{"a":"\xff"}')  # not UTF-8


def test_entry_hash_layout_is_prev_hash_then_utf8() -> None:
    text = '{"a":"渝"}'
    first = entry_hash(GENESIS, text)
    assert first == sha(bytes(32) + text.encode("utf-8"))
    second = entry_hash(first, "{}")
    assert second == sha(first + b"{}")
    assert chain([text, "{}"]) == [first, second]


def test_utc_text_is_fixed_width_and_zoned() -> None:
    cst = dt.timezone(dt.timedelta(hours=8))
    assert utc_text(dt.datetime(2027, 3, 31, 23, 59, tzinfo=cst)) == "2027-03-31T15:59:00.000000Z"
    assert utc_text(dt.datetime(2027, 3, 31, 15, 59)) == "2027-03-31T15:59:00.000000Z"


# --- Merkle tree -------------------------------------------------------------------------


def test_merkle_roots_by_hand() -> None:
    a, b, c = (sha(x) for x in (b"a", b"b", b"c"))
    la, lb, lc = (sha(b"\x00" + h) for h in (a, b, c))
    assert merkle_root([]) == EMPTY_ROOT == sha(b"")
    assert merkle_root([a]) == la
    assert merkle_root([a, b]) == sha(b"\x01" + la + lb)
    assert merkle_root([a, b, c]) == sha(b"\x01" + sha(b"\x01" + la + lb) + lc)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 64, 100])
def test_frontier_matches_the_recursive_definition(n: int) -> None:
    ls = leaves(n)
    frontier = Frontier()
    nodes = []
    for leaf in ls:
        nodes += frontier.append(leaf)
    assert frontier.root() == mth(ls)
    for level, index, h in nodes:  # every completed node is the perfect subtree it claims to be
        assert h == mth(ls[index << level : (index + 1) << level])
    resumed = Frontier(n // 2, [mth(ls[lo << lv : (lo + 1) << lv]) for lv, lo in perfect_pieces(0, n // 2)])
    for leaf in ls[n // 2 :]:
        resumed.append(leaf)
    assert resumed.root() == frontier.root()


def test_perfect_pieces() -> None:
    assert perfect_pieces(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert perfect_pieces(4, 7) == [(1, 2), (0, 6)]
    assert perfect_pieces(8, 16) == [(3, 1)]
    assert perfect_pieces(6, 7) == [(0, 6)]
    with pytest.raises(ValueError):
        Frontier(3, [b"x"])


# --- proofs: the RFC 6962 section 2.1.3 example tree of seven leaves ------------------------


def rfc_tree() -> dict[str, bytes]:
    ls = leaves(7)
    a, b, c, d, e, f, j = ls
    g, h, i = node_hash(a, b), node_hash(c, d), node_hash(e, f)
    k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 - the RFC's names
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "j": j, "g": g, "h": h, "i": i, "k": k, "l": l}


def test_inclusion_paths_of_the_rfc_example() -> None:
    t, ls = rfc_tree(), leaves(7)
    expected = {0: "b h l", 3: "c g l", 4: "f j k", 6: "i k"}
    for index, names in expected.items():
        path = [subtree(ls, lo, hi) for lo, hi in inclusion_ranges(index, 7)]
        assert path == [t[n] for n in names.split()]
        assert verify_inclusion(ls[index], index, 7, path, mth(ls))


def test_consistency_proofs_of_the_rfc_example() -> None:
    t, ls = rfc_tree(), leaves(7)
    expected = {3: "c d g l", 4: "l", 6: "i j k"}
    for old, names in expected.items():
        proof = [subtree(ls, lo, hi) for lo, hi in consistency_ranges(old, 7)]
        assert proof == [t[n] for n in names.split()]
        assert verify_consistency(old, 7, mth(ls[:old]), mth(ls), proof)


def test_every_inclusion_proof_verifies_and_forgeries_fail() -> None:
    for size in range(1, 34):
        ls = leaves(size)
        root = mth(ls)
        for index in range(size):
            path = [subtree(ls, lo, hi) for lo, hi in inclusion_ranges(index, size)]
            assert verify_inclusion(ls[index], index, size, path, root)
            assert not verify_inclusion(leaf_hash(b"forged"), index, size, path, root)
            assert not verify_inclusion(ls[index], index, size, path, sha(b"another root"))
            if size > 1:
                assert not verify_inclusion(ls[index], (index + 1) % size, size, path, root)
                # (The size alone is not what a proof binds: the signed root of that size is.)
                assert not verify_inclusion(ls[index], index, size + 1, path, mth(leaves(size + 1)))
                assert not verify_inclusion(ls[index], index, size, path[:-1], root)
    with pytest.raises(ValueError):
        inclusion_ranges(3, 3)


def test_every_consistency_proof_verifies_and_forgeries_fail() -> None:
    ls = leaves(40)
    for old, new in itertools.combinations_with_replacement(range(1, 41), 2):
        proof = [subtree(ls, lo, hi) for lo, hi in consistency_ranges(old, new)]
        old_root, new_root = mth(ls[:old]), mth(ls[:new])
        assert verify_consistency(old, new, old_root, new_root, proof), (old, new)
        if old < new:
            assert not verify_consistency(old, new, sha(b"forged"), new_root, proof)
            assert not verify_consistency(old, new, old_root, sha(b"forged"), proof)
            forged = [sha(b"x"), *proof[1:]]
            assert not verify_consistency(old, new, old_root, new_root, forged)
            # A history that changed leaf 0 after `old` was signed is not consistent with it.
            rewritten = [leaf_hash(b"rewritten"), *ls[1:new]]
            assert not verify_consistency(old, new, old_root, mth(rewritten), proof)
    with pytest.raises(ValueError):
        consistency_ranges(0, 3)


# --- signed note -----------------------------------------------------------------------------


def test_checkpoint_note_layout() -> None:
    note = checkpoint_note(3, "ab" * 32, "cd" * 32, "2026-01-01T00:00:00.000000Z")
    assert note == (
        b"policyflow-audit-checkpoint/v1\nsize 3\nroot "
        + b"ab" * 32
        + b"\nhead "
        + b"cd" * 32
        + b"\ncreated_at 2026-01-01T00:00:00.000000Z\n"
    )
