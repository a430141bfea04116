"""The ledger's cryptography, pure: canonical form, hash chain, RFC 6962 Merkle tree and proofs.

Nothing here does I/O, so the service, the offline verifier and the tests share one definition.

Canonical form of an event (the bytes that are hashed and stored)
    RFC 8785, the JSON Canonicalization Scheme (JCS), of ``event.model_dump(mode="json")``,
    as UTF-8: every envelope field present (``None`` as ``null``), object keys sorted by
    their UTF-16 code units at every depth, no whitespace, strings with only the escapes JCS
    requires (non-ASCII characters as themselves), numbers as ECMAScript prints them (``30``
    for 30.0, ``1e-7``), datetimes as pydantic's ISO 8601 text. JCS has no form for NaN,
    infinities, lone surrogates or integers beyond 2**53 - 1: an event holding one cannot be
    canonicalised, and ingest sets it aside as a reject. ``is_canonical`` re-canonicalises a
    stored text (parsed as plain JSON, so a verifier needs no pydantic) and compares bytes.

Entry hash (the chain)
    ``hash[i] = SHA-256(hash[i-1] || canonical[i])`` where ``hash[i-1]`` is the previous
    entry's 32 raw digest bytes (``GENESIS`` = 32 zero bytes before the first entry) and
    ``canonical[i]`` the UTF-8 bytes above. No separators or lengths: the previous hash has
    a fixed length, so the split is unambiguous. Hashes are shown as lowercase hex.

Merkle tree (RFC 6962 section 2.1, as in Certificate Transparency)
    The leaves are the entry hashes in ledger order (leaf ``i`` is ledger_seq ``i + 1``).
    ``leaf = SHA-256(0x00 || entry_hash)``, ``node = SHA-256(0x01 || left || right)``,
    the tree of n leaves splits at the largest power of two below n, the empty tree's root
    is ``SHA-256("")``. Proofs and their verification follow RFC 6962 / RFC 9162 2.1.3-2.1.4.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from typing import Any

import rfc8785
from pydantic import BaseModel

GENESIS = bytes(32)
EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


# --- canonical form and chain -------------------------------------------------------------


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 (JCS) of a JSON value, UTF-8: the one canonical JSON of the ledger.

    Raises `rfc8785.CanonicalizationError` (a ValueError) for what JCS cannot represent.
    """
    return rfc8785.dumps(value)


def canonical_json(event: BaseModel) -> str:
    """The canonical text of an event (see the module docstring)."""
    return canonical_bytes(event.model_dump(mode="json")).decode("utf-8")


def is_canonical(data: bytes) -> bool:
    """Whether `data` is exactly the canonical form of the JSON it holds.

    JSON numbers are IEEE 754 doubles in JCS, so every number is parsed as a float: an
    integral float of 2**53 or more, which JCS prints without a fraction, reads back as what
    it was written from.
    """
    try:
        return canonical_bytes(json.loads(data, parse_int=float)) == data
    except (ValueError, RecursionError):  # UnicodeDecodeError and CanonicalizationError are ValueErrors
        return False


def utc_text(value: dt.datetime) -> str:
    """Fixed-width UTC text (naive datetimes are taken as UTC), so text order is time order.

    The ledger's `occurred_at` column holds this form of the event's time, for range queries.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")[:26] + "Z"


def entry_hash(prev_hash: bytes, canonical: bytes | str) -> bytes:
    """SHA-256(previous 32-byte hash || canonical UTF-8 bytes); a text is hashed as its UTF-8."""
    data = canonical.encode("utf-8") if isinstance(canonical, str) else canonical
    return hashlib.sha256(prev_hash + data).digest()


def chain(canonicals: Iterable[bytes | str], prev_hash: bytes = GENESIS) -> list[bytes]:
    """The entry hashes of consecutive canonical texts following `prev_hash`."""
    out = []
    for data in canonicals:
        prev_hash = entry_hash(prev_hash, data)
        out.append(prev_hash)
    return out


# --- Merkle tree ---------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2): where RFC 6962 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def fold_pieces(pieces: list[bytes]) -> bytes:
    """Root of a range from its perfect subtrees (left to right, sizes strictly decreasing).

    RFC 6962 always splits off the largest power of two on the left, so such a range is
    the left-most piece joined with the root of the rest: fold from the right.
    """
    if not pieces:
        return EMPTY_ROOT
    root = pieces[-1]
    for piece in reversed(pieces[:-1]):
        root = node_hash(piece, root)
    return root


def perfect_pieces(start: int, end: int) -> list[tuple[int, int]]:
    """Split [start, end) into aligned perfect subtrees, as (level, index) left to right.

    A subtree at (level, index) covers leaves [index << level, (index + 1) << level). Every
    subtree that RFC 6962 proofs refer to decomposes into strictly decreasing pieces.
    """
    pieces = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while (1 << level) > end - start:
            level -= 1
        pieces.append((level, start >> level))
        start += 1 << level
    return pieces


class Frontier:
    """The right edge of a growing tree: one perfect subtree root per set bit of `size`.

    Appending a leaf merges equal-sized subtrees like a binary counter, so the root of any
    number of leaves is computed streaming in O(log n) memory. `append` returns the perfect
    subtrees it completed, as (level, index, hash), for callers that store interior nodes.
    """

    def __init__(self, size: int = 0, pieces: list[bytes] | None = None) -> None:
        self.size = size
        self.pieces = list(pieces or [])
        if len(self.pieces) != bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} needs {bin(size).count('1')} pieces, got {len(self.pieces)}")

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        completed = []
        current, level, index = leaf, 0, self.size
        while (self.size >> level) & 1:
            current = node_hash(self.pieces.pop(), current)
            level, index = level + 1, index >> 1
            completed.append((level, index, current))
        self.pieces.append(current)
        self.size += 1
        return completed

    def append_entry(self, entry: bytes) -> list[tuple[int, int, bytes]]:
        """Append a ledger entry (its 32-byte hash is the leaf's data)."""
        return self.append(leaf_hash(entry))

    def extend_entries(self, entry_hashes: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        completed = []
        for h in entry_hashes:
            completed += self.append(leaf_hash(h))
        return completed

    def root(self) -> bytes:
        return fold_pieces(self.pieces)


def merkle_root(entry_hashes: Iterable[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over entry hashes (each hashed as a leaf), streaming."""
    frontier = Frontier()
    frontier.extend_entries(entry_hashes)
    return frontier.root()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH by the recursive definition, over leaf hashes. For tests and small ranges."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = largest_power_of_two_below(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


# --- proofs: which subtrees, then verification ---------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form PATH(index, D[size]) (RFC 6962 2.1.1), in order."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    out: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    return out[::-1]  # the path is listed from the leaf upwards


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form PROOF(old, D[new]) (RFC 6962 2.1.2), in order."""
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from {old} to {new}")
    out: list[tuple[int, int]] = []
    start, end, m, complete = 0, new, old, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                out.append((start, end))
            break
        k = largest_power_of_two_below(n)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start, m, complete = start + k, m - k, False
    return out[::-1]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does `proof` show leaf hash `leaf` at `index` in the tree `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 2.1.4.2: is the tree `new_root` of `new` leaves an extension of `old_root`?"""
    if old == new:
        return not proof and old_root == new_root
    if not 0 < old < new or not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # an exact power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


# --- signed checkpoints --------------------------------------------------------------------

CHECKPOINT_NOTE_VERSION = "policyflow-audit-checkpoint/v1"


def checkpoint_note(size: int, root_hex: str, head_hex: str, created_at: str) -> bytes:
    """The exact bytes a checkpoint's Ed25519 signature covers (like a CT signed tree head).

    Five LF-terminated ASCII lines: the version tag, ``size <n>``, ``root <hex>`` (Merkle root
    of the first n entries), ``head <hex>`` (hash of entry n), ``created_at <UTC time>``.
    """
    lines = [CHECKPOINT_NOTE_VERSION, f"size {size}", f"root {root_hex}", f"head {head_hex}"]
    return "".join(line + "\n" for line in [*lines, f"created_at {created_at}"]).encode("ascii")
