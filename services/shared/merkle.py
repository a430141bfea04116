"""RFC 6962 Merkle tree hashing and proofs, pure (no I/O): the one implementation, shared by the
audit ledger (services/audit) and the witness (services/witness).

The leaves are 32-byte entry hashes: ``leaf = SHA-256(0x00 || data)``, ``node = SHA-256(0x01 ||
left || right)``, the tree of n leaves splits at the largest power of two below n, the empty
tree's root is ``SHA-256("")``. Proofs and their verification follow RFC 6962 / RFC 9162
2.1.3-2.1.4.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


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
