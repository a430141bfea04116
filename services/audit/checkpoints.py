"""Signed checkpoints: the ledger size and the Merkle root over its entries, signed with Ed25519.

The root is computed incrementally: the checkpointer keeps the tree's frontier (one hash per
set bit of the size) and feeds it only the entries added since the last checkpoint, read in
chunks, so neither memory nor time grows with the whole ledger. Interior nodes completed on
the way (level >= NODE_LEVEL) are stored in the same transaction as the checkpoint, which is
what lets proofs stay O(log n).
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.audit.ledger import Frontier, checkpoint_note
from services.audit.proofs import frontier_at
from services.audit.store import NODE_LEVEL, checkpoints, latest_checkpoint, ledger, merkle_nodes, now_text

log = structlog.get_logger("audit.checkpoints")
SIGNING_KEY_FILE = "audit-checkpoint-key.pem"
PUBLIC_KEY_FILE = "audit-checkpoint-public.pem"
READ_CHUNK = 5000


class Signer:
    """The checkpoint key pair, generated into the key directory on first start (never committed)."""

    def __init__(self, key_dir: Path) -> None:
        key_dir.mkdir(parents=True, exist_ok=True)
        private = key_dir / SIGNING_KEY_FILE
        if not private.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            private.touch(mode=0o600)  # created owner-only before the secret is written into it
            private.write_bytes(pem)
        key = serialization.load_pem_private_key(private.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{private} is not an Ed25519 private key")
        self._key = key
        self.public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        public = key_dir / PUBLIC_KEY_FILE
        if not public.exists() or public.read_text() != self.public_pem:  # a mounted key dir may be read-only
            public.write_text(self.public_pem)

    def sign(self, note: bytes) -> str:
        return base64.b64encode(self._key.sign(note)).decode()


class Checkpointer:
    """Makes checkpoints, one at a time (ingest and the API may both ask)."""

    def __init__(self, engine: AsyncEngine, signer: Signer, every: int) -> None:
        self.engine = engine
        self.signer = signer
        self.every = every
        self._lock = asyncio.Lock()
        self._frontier: Frontier | None = None  # at the last checkpoint's size
        self._head = ""

    async def _load(self) -> Frontier:
        if self._frontier is None:
            async with self.engine.connect() as conn:
                last = await latest_checkpoint(conn)
                self._frontier = await frontier_at(conn, int(last["size"]) if last else 0)
                self._head = str(last["head"]) if last else ""
        return self._frontier

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
        created_at = now_text()
        root = work.root().hex()
        signature = self.signer.sign(checkpoint_note(work.size, root, head, created_at))
        row: dict[str, Any] = {
            "size": work.size,
            "root": root,
            "head": head,
            "created_at": created_at,
            "signature": signature,
            "public_key": self.signer.public_pem,
        }
        async with self.engine.begin() as conn:
            if nodes:
                await conn.execute(merkle_nodes.insert(), nodes)
            await conn.execute(checkpoints.insert(), [row])
        self._frontier, self._head = work, head
        log.info("checkpoint.signed", size=work.size, root=root, nodes=len(nodes))
        return row
