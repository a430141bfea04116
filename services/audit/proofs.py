"""Merkle subtree roots read from the database, and RFC 6962 proofs built from them.

Perfect subtrees at level >= NODE_LEVEL come from `merkle_nodes` (written when a checkpoint
covers them); smaller ones are recomputed from fewer than 2**NODE_LEVEL entry hashes. So a
proof costs O(log n) small queries, never a walk over the ledger.
"""

from __future__ import annotations

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from services.audit.ledger import (
    Frontier,
    consistency_ranges,
    fold_pieces,
    inclusion_ranges,
    leaf_hash,
    merkle_root,
    perfect_pieces,
)
from services.audit.store import NODE_LEVEL, ledger, merkle_nodes

FALLBACK_CHUNK = 4096


async def entry_hashes(conn: AsyncConnection, start: int, end: int) -> list[bytes]:
    """Entry hashes of leaves [start, end), i.e. ledger_seq start+1 .. end."""
    query = (
        select(ledger.c.hash)
        .where(ledger.c.ledger_seq > start, ledger.c.ledger_seq <= end)
        .order_by(ledger.c.ledger_seq)
    )
    hashes = [bytes.fromhex(h) for h in (await conn.execute(query)).scalars()]
    if len(hashes) != end - start:
        raise LookupError(f"the ledger has no entries {start + 1}..{end}")
    return hashes


async def _perfect_root_from_entries(conn: AsyncConnection, start: int, end: int) -> bytes:
    """Root of a perfect subtree recomputed from its entries, in chunks (a node not stored yet)."""
    frontier = Frontier()
    for lo in range(start, end, FALLBACK_CHUNK):
        frontier.extend_entries(await entry_hashes(conn, lo, min(lo + FALLBACK_CHUNK, end)))
    return frontier.root()


async def piece_hashes(conn: AsyncConnection, start: int, end: int) -> list[bytes]:
    """Roots of the aligned perfect subtrees that make up [start, end), left to right."""
    pieces = perfect_pieces(start, end)
    big = [p for p in pieces if p[0] >= NODE_LEVEL]
    stored: dict[tuple[int, int], bytes] = {}
    if big:
        query = select(merkle_nodes).where(tuple_(merkle_nodes.c.level, merkle_nodes.c.idx).in_(big))
        for row in await conn.execute(query):
            stored[(row.level, row.idx)] = bytes.fromhex(row.hash)
    small = [p for p in pieces if p[0] < NODE_LEVEL]
    # Pieces shrink left to right, so the small ones are one contiguous tail: one query.
    tail_start = small[0][1] << small[0][0] if small else end
    tail = await entry_hashes(conn, tail_start, end) if small else []
    out = []
    for level, index in pieces:
        lo = index << level
        if level < NODE_LEVEL:
            out.append(merkle_root(tail[lo - tail_start : lo - tail_start + (1 << level)]))
        elif (level, index) in stored:
            out.append(stored[(level, index)])
        else:
            out.append(await _perfect_root_from_entries(conn, lo, lo + (1 << level)))
    return out


async def subtree_root(conn: AsyncConnection, start: int, end: int) -> bytes:
    return fold_pieces(await piece_hashes(conn, start, end))


async def frontier_at(conn: AsyncConnection, size: int) -> Frontier:
    """The frontier of the first `size` leaves: its pieces are exactly [0, size)'s perfect subtrees."""
    return Frontier(size, await piece_hashes(conn, 0, size))


async def leaf_of(conn: AsyncConnection, index: int) -> bytes:
    return leaf_hash((await entry_hashes(conn, index, index + 1))[0])


async def inclusion_proof(conn: AsyncConnection, index: int, size: int) -> list[bytes]:
    return [await subtree_root(conn, lo, hi) for lo, hi in inclusion_ranges(index, size)]


async def consistency_proof(conn: AsyncConnection, old: int, new: int) -> list[bytes]:
    return [await subtree_root(conn, lo, hi) for lo, hi in consistency_ranges(old, new)]
