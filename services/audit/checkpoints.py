"""Signed checkpoints: the ledger size and the Merkle root over its entries, as a C2SP signed note.

Each checkpoint is a c2sp.org/tlog-checkpoint body (origin, size, base64 root) in a
c2sp.org/signed-note with the log's Ed25519 note signature (services/shared/signed_note.py).
A checkpoint is made every `every` entries and, with `interval`, at most `interval` seconds
after the ledger grew past the latest one, so a growing ledger is covered within seconds.

The root is computed incrementally: the checkpointer keeps the tree's frontier (one hash per
set bit of the size) and feeds it only the entries added since the last checkpoint, read in
chunks, so neither memory nor time grows with the whole ledger. Interior nodes completed on
the way (level >= NODE_LEVEL) are stored in the same transaction as the checkpoint, which is
what lets proofs stay O(log n).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.audit.ledger import Frontier
from services.audit.proofs import frontier_at
from services.audit.settings import DEFAULT_ORIGIN
from services.audit.store import NODE_LEVEL, checkpoints, latest_checkpoint, ledger, merkle_nodes, now_text
from services.shared.keys import ensure_key_pair, load_private_key, public_pem
from services.shared.signed_note import checkpoint_body, parse_signature_line, raw_public, sign_note, split_note, vkey

log = structlog.get_logger("audit.checkpoints")
SIGNING_KEY_FILE = "audit-checkpoint-key.pem"
PUBLIC_KEY_FILE = "audit-checkpoint-public.pem"
READ_CHUNK = 5000


class Signer:
    """The checkpoint key pair, generated into the key directory on first start, under a lock
    (services/shared/keys.py; never committed)."""

    def __init__(self, key_dir: Path, origin: str = DEFAULT_ORIGIN) -> None:
        self.origin = origin
        private, public = ensure_key_pair(key_dir, SIGNING_KEY_FILE, PUBLIC_KEY_FILE)
        self._key = load_private_key(private)
        self.public_pem = public_pem(self._key)
        if not public.exists() or public.read_text() != self.public_pem:  # a mounted key dir may be read-only
            public.write_text(self.public_pem)
        self.vkey = vkey(origin, raw_public(self._key))  # name+keyid+base64, for docs and third-party verifiers

    def sign(self, size: int, root: bytes) -> tuple[str, str]:
        """(signed note, base64 of key id || signature) of the checkpoint of `size` entries."""
        note = sign_note(checkpoint_body(self.origin, size, root), self.origin, self._key)
        _, lines = split_note(note)
        _, kid, signature = parse_signature_line(lines[0])
        return note, base64.b64encode(kid + signature).decode()


class Checkpointer:
    """Makes checkpoints, one at a time (ingest and the API may both ask)."""

    def __init__(self, engine: AsyncEngine, signer: Signer, every: int, interval: float = 0.0) -> None:
        self.engine = engine
        self.signer = signer
        self.every = every
        self.interval = interval
        self.on_made: Callable[[dict[str, Any]], Awaitable[None]] | None = None  # e.g. ask the witnesses
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._frontier: Frontier | None = None  # at the last checkpoint's size
        self._head = ""

    async def _load(self) -> Frontier:
        if self._frontier is None:
            async with self.engine.connect() as conn:
                last = await latest_checkpoint(conn)
                self._frontier = await frontier_at(conn, int(last["size"]) if last else 0)
                self._head = str(last["head"]) if last else ""
        return self._frontier

    def grew(self, size: int) -> None:
        """The ledger has `size` entries: make sure a checkpoint covers them within `interval` seconds."""
        signed = self._frontier.size if self._frontier is not None else -1
        if self.interval <= 0 or size <= signed or (self._timer is not None and not self._timer.done()):
            return
        self._timer = asyncio.create_task(self._after_interval(), name="audit-checkpoint-timer")

    async def _after_interval(self) -> None:
        await asyncio.sleep(self.interval)
        try:
            await self.checkpoint()
        except Exception:
            log.exception("checkpoint.timer_failed")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer

    async def maybe(self, size: int) -> dict[str, Any] | None:
        """After ingest: a checkpoint at every `every` entries since the last one, up to `size`.

        The sizes do not depend on how ingest grouped its transactions (one may append several
        thousand entries when it catches up): with no checkpoint yet they are every, 2 * every, ...
        Returns the last one made, if any.
        """
        if self.every <= 0:
            return None
        made = None
        async with self._lock:
            frontier = await self._load()
            while size - frontier.size >= self.every:
                made = await self._make(frontier, upto=frontier.size + self.every)
                if made is None:  # nothing to add after all
                    break
                frontier = await self._load()
        return made

    async def checkpoint(self) -> dict[str, Any] | None:
        """On demand: a checkpoint of the whole ledger now (the latest one if nothing was added)."""
        async with self._lock:
            frontier = await self._load()
            made = await self._make(frontier)
            if made is not None:
                return made
            async with self.engine.connect() as conn:
                return await latest_checkpoint(conn)

    async def _make(self, frontier: Frontier, upto: int | None = None) -> dict[str, Any] | None:
        """A checkpoint of the first `upto` entries (all of them if None), unless none were added."""
        # Work on a copy: if the transaction fails, the cached frontier still matches the database.
        work = Frontier(frontier.size, frontier.pieces)
        head = self._head
        nodes: list[dict[str, Any]] = []
        while True:
            async with self.engine.connect() as conn:
                query = (
                    select(ledger.c.ledger_seq, ledger.c.hash)
                    .where(ledger.c.ledger_seq > work.size)
                    .order_by(ledger.c.ledger_seq)
                    .limit(READ_CHUNK if upto is None else min(READ_CHUNK, upto - work.size))
                )
                rows = (await conn.execute(query)).all()
            for entry in rows:
                if entry.ledger_seq != work.size + 1:
                    raise RuntimeError(f"ledger_seq {entry.ledger_seq} follows {work.size}: the ledger has a hole")
                completed = work.extend_entries([bytes.fromhex(entry.hash)])
                nodes += [{"level": lv, "idx": i, "hash": h.hex()} for lv, i, h in completed if lv >= NODE_LEVEL]
                head = entry.hash
            if len(rows) < READ_CHUNK:
                break
        if work.size == frontier.size:
            return None
        root = work.root()
        note, signature = self.signer.sign(work.size, root)
        row: dict[str, Any] = {
            "size": work.size,
            "root": root.hex(),
            "head": head,
            "created_at": now_text(),
            "signature": signature,
            "public_key": self.signer.public_pem,
            "note": note,
        }
        async with self.engine.begin() as conn:
            if nodes:
                await conn.execute(merkle_nodes.insert(), nodes)
            await conn.execute(checkpoints.insert(), [row])
        self._frontier, self._head = work, head
        log.info("checkpoint.signed", size=work.size, root=row["root"], nodes=len(nodes))
        if self.on_made is not None:
            await self.on_made(row)
        return row
