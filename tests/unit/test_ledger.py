"""The audit ledger's pure cryptography against hand-computed values and the RFC 6962 examples."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import random
import struct

import pytest

from contracts import events as ev
from contracts.base import Actor, UserRole
from services.audit.ledger import (
    EMPTY_ROOT,
    GENESIS,
    Frontier,
    canonical_json,
    canonical_text,
    chain,
    checkpoint_note,
    consistency_ranges,
    entry_hash,
    fast_canonical_text,
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
from services.audit.verify import ChainVerifier, CheckpointRef

DEPT = Actor(sub="department:yuzhong", role=UserRole.DEPARTMENT, unit_id="yuzhong")


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves(n: int) -> list[bytes]:
    """Leaf hashes of n made-up entries (entry hash = sha of its index)."""
    return [leaf_hash(sha(bytes([i]))) for i in range(n)]


def subtree(ls: list[bytes], lo: int, hi: int) -> bytes:
    return mth(ls[lo:hi])


# --- canonical form and chain ------------------------------------------------------------


def test_canonical_form_is_sorted_compact_utf8() -> None:
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
        '"narrative":"进展顺利","opens":[],"percent":30.0,"period":"2026-Q1","year":2026},'
        '"programme_id":"cq-2022-79","schema_version":1,"seq":5,"task_no":14,'
        '"type":"ProgressReported","unit_id":"yuzhong"}'
    )
    assert is_canonical(text)
    assert not is_canonical(text.replace(",", ", ", 1))
    assert not is_canonical('{"b":1,"a":2}')
    assert not is_canonical("not json")
    assert ev.Event.model_validate_json(text) == event  # the canonical text is the event


def same_text_or_same_error(data: object) -> None:
    """fast_canonical_text gives json.dumps' text, or raises what json.dumps raises."""
    try:
        expected: object = canonical_text(data)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - the error is what is compared
        expected = type(exc)
    try:
        got: object = fast_canonical_text(data)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001
        got = type(exc)
    assert got == expected, data


def test_the_fast_canonical_text_is_byte_identical() -> None:
    # Every code point but the surrogates, in values and in keys (sorted by code point).
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    same_text_or_same_error({"s": every, every[::-1]: 1, every[:300]: [every[-300:]]})
    keys = ["b", "a", "é", "\U0001f600", "\uffff", "\ue000", "中", "\x7f", "\x00", "Z", "", "aa", "a\x00"]
    rng = random.Random(7)
    for _ in range(2000):
        same_text_or_same_error({"".join(rng.sample(keys, rng.randint(0, 3))): i for i in range(rng.randint(1, 9))})
    # Floats: Python's repr, which orjson does not always match (1e-05, 1e+16): these must fall back.
    floats = [0.0, -0.0, 1.0, 30.0, 0.1, 1 / 3, 1e-4, 1e-5, 1e15, 1e16, 1e22, 5e-324, 1.7976931348623157e308, 2.5e-9]
    floats += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20000)]
    for f in floats:
        same_text_or_same_error({"percent": f, "nested": [{"v": f, "w": [f, 1]}]})
    # NaN and infinity are refused (allow_nan=False); orjson alone would write null.
    for f in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError):
            fast_canonical_text({"x": [1, {"y": f}]})
    # Ints beyond 64 bits, booleans, null, empty and deep containers.
    for n in (2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 10**40):
        same_text_or_same_error({"n": n, "l": [n, {"n": n}]})
    same_text_or_same_error({"t": True, "f": False, "n": None, "e": {}, "l": [], "d": [[[[{"a": [[]]}]]]]})
    deep: object = 1
    for _ in range(300):  # deeper than orjson writes
        deep = [deep]
    same_text_or_same_error({"deep": deep})
    same_text_or_same_error({"lone": "\ud800"})  # a lone surrogate: orjson refuses, json.dumps writes it
    same_text_or_same_error({1: "int key"})  # json.dumps writes "1"; orjson refuses


def test_the_canonical_json_of_benchmark_events_is_unchanged() -> None:
    from bench.events import events

    for event in events("cq-test", 400):
        assert canonical_json(event) == canonical_text(event.model_dump(mode="json"))


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


# --- signed note and the chain verifier ------------------------------------------------------


def test_checkpoint_note_layout() -> None:
    note = checkpoint_note(3, "ab" * 32, "cd" * 32, "2026-01-01T00:00:00.000000Z")
    assert note == (
        b"policyflow-audit-checkpoint/v1\nsize 3\nroot " + b"ab" * 32 + b"\nhead " + b"cd" * 32
        + b"\ncreated_at 2026-01-01T00:00:00.000000Z\n"
    )


def entries(n: int) -> list[dict[str, object]]:
    texts = [f'{{"event_id":"a#{i:06d}","seq":{i}}}' for i in range(n)]
    hashes = chain(texts)
    prevs = [GENESIS, *hashes[:-1]]
    return [
        {"ledger_seq": i + 1, "event_id": f"a#{i:06d}", "canonical": t, "prev_hash": p.hex(), "hash": h.hex()}
        for i, (t, p, h) in enumerate(zip(texts, prevs, hashes, strict=True))
    ]


def run(rows: list[dict[str, object]], checkpoints: list[CheckpointRef] | None = None) -> ChainVerifier:
    v = ChainVerifier(checkpoints)
    for row in rows:
        if v.feed(row):
            break
    v.finish()
    return v


def test_chain_verifier_accepts_a_good_ledger_and_its_checkpoint() -> None:
    rows = entries(10)
    hashes = [bytes.fromhex(str(r["hash"])) for r in rows]
    cp = CheckpointRef(7, merkle_root(hashes[:7]).hex(), str(rows[6]["hash"]))
    v = run(rows, [cp])
    assert v.failure is None and v.count == 10 and v.head == rows[-1]["hash"] and v.checkpoints_checked == 1


def test_chain_verifier_names_the_first_bad_entry() -> None:
    rows = entries(10)
    altered = [dict(r) for r in rows]
    altered[4]["canonical"] = str(altered[4]["canonical"]).replace("4", "5", 1)
    failure = run(altered).failure
    assert failure is not None and failure.ledger_seq == 5 and "altered" in failure.reason

    deleted = rows[:3] + rows[4:]
    failure = run(deleted).failure
    assert failure is not None and failure.ledger_seq == 4 and "missing" in failure.reason

    relinked = [dict(r) for r in rows]
    relinked[6]["prev_hash"] = "00" * 32
    failure = run(relinked).failure
    assert failure is not None and failure.ledger_seq == 7 and "chain" in failure.reason


def test_chain_verifier_catches_a_rewritten_history_and_a_truncation() -> None:
    rows = entries(8)
    hashes = [bytes.fromhex(str(r["hash"])) for r in rows]
    cp = CheckpointRef(8, merkle_root(hashes).hex(), str(rows[-1]["hash"]))
    # Rewritten consistently (every hash recomputed) but the signed root no longer matches.
    forged = entries(9)[1:]
    for i, r in enumerate(forged):
        r["ledger_seq"] = i + 1
    texts = [str(r["canonical"]) for r in forged]
    for r, p, h in zip(forged, [GENESIS, *chain(texts)[:-1]], chain(texts), strict=True):
        r["prev_hash"], r["hash"] = p.hex(), h.hex()
    failure = run(forged, [cp]).failure
    assert failure is not None and failure.ledger_seq == 8 and "checkpoint" in failure.reason
    failure = run(rows[:5], [cp]).failure
    assert failure is not None and "covers 8" in failure.reason
