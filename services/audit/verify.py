"""Walking a ledger entry by entry and saying where it stops being trustworthy.

One checker for both the service's `GET /v1/audit/verify` (rows from the database) and the
offline `policyflow audit verify` (lines of an export): feed it entries in order; it keeps
only the previous hash and a Merkle frontier, so memory does not grow with the ledger.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.ledger import GENESIS, Frontier, canonical_text, checkpoint_note, entry_hash, utc_text

# Envelope fields that the ledger also keeps as columns (for queries): they must agree with
# the hashed text, or a query could be steered by an edited column the hash does not cover.
COLUMN_FIELDS = ("event_id", "programme_id", "assignment_id", "unit_id", "seq", "type")


@dataclass(frozen=True)
class Failure:
    ledger_seq: int
    reason: str


@dataclass(frozen=True)
class CheckpointRef:
    size: int
    root: str
    head: str


def checkpoint_signature_ok(cp: dict[str, Any], public_key_pem: str | bytes) -> bool:
    """Does the Ed25519 signature cover this checkpoint's note (see ledger.checkpoint_note)?"""
    try:
        key = serialization.load_pem_public_key(
            public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        )
        if not isinstance(key, Ed25519PublicKey):
            return False
        note = checkpoint_note(int(cp["size"]), str(cp["root"]), str(cp["head"]), str(cp["created_at"]))
        key.verify(base64.b64decode(str(cp["signature"]), validate=True), note)
        return True
    except (InvalidSignature, ValueError, KeyError, TypeError, binascii.Error):
        return False


def _utc(value: Any) -> str | None:
    try:
        return utc_text(dt.datetime.fromisoformat(str(value)))
    except ValueError:
        return None


class ChainVerifier:
    """Feed entries in ledger order; the first failure is kept and later entries are ignored."""

    def __init__(self, checkpoints: list[CheckpointRef] | None = None) -> None:
        self.count = 0
        self.prev = GENESIS
        self.frontier = Frontier()
        self.failure: Failure | None = None
        self.pending = sorted(checkpoints or [], key=lambda c: c.size)
        self.checkpoints_checked = 0

    @property
    def head(self) -> str:
        return self.prev.hex()

    def feed(self, entry: dict[str, Any], columns: bool = False) -> Failure | None:
        """Check one entry: ledger_seq, prev_hash, hash, canonical text (and its columns if asked)."""
        if self.failure is not None:
            return self.failure
        self.failure = self._check(entry, columns)
        return self.failure

    def _check(self, entry: dict[str, Any], columns: bool) -> Failure | None:
        expected = self.count + 1
        seq = entry.get("ledger_seq")
        if seq != expected:
            reason = f"expected ledger_seq {expected}, found {seq}: an entry is missing or out of order"
            return Failure(expected, reason)
        text = entry.get("canonical")
        if not isinstance(text, str):
            return Failure(expected, "the entry has no canonical text")
        if entry.get("prev_hash") != self.prev.hex():
            return Failure(expected, "prev_hash is not the previous entry's hash: the chain is broken here")
        digest = entry_hash(self.prev, text)
        if entry.get("hash") != digest.hex():
            return Failure(expected, "hash is not SHA-256(prev_hash || canonical): the entry was altered")
        try:
            event = json.loads(text)
            canonical = canonical_text(event) == text
        except (ValueError, TypeError):
            canonical = False
        if not canonical or not isinstance(event, dict):
            return Failure(expected, "the stored text is not in canonical form")
        fields = COLUMN_FIELDS if columns else ("event_id",)
        for name in fields:
            if name in entry and entry[name] != event.get(name):
                return Failure(expected, f"column {name} ({entry[name]!r}) differs from the hashed event")
        if columns and "occurred_at" in entry and entry["occurred_at"] != _utc(event.get("occurred_at")):
            return Failure(expected, f"column occurred_at ({entry['occurred_at']!r}) differs from the hashed event")
        self.count, self.prev = expected, digest
        self.frontier.append_entry(digest)
        return self._at_checkpoint()

    def _at_checkpoint(self) -> Failure | None:
        while self.pending and self.pending[0].size == self.count:
            cp = self.pending.pop(0)
            if cp.head != self.head or cp.root != self.frontier.root().hex():
                return Failure(cp.size, f"the first {cp.size} entries do not match the signed checkpoint's root")
            self.checkpoints_checked += 1
        return None

    def finish(self) -> Failure | None:
        """After the last entry: a checkpoint beyond the end means entries were removed."""
        if self.failure is None and self.pending:
            cp = self.pending[0]
            self.failure = Failure(
                self.count + 1, f"the ledger ends at {self.count} entries but a signed checkpoint covers {cp.size}"
            )
        return self.failure
