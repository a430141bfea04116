"""Walking a ledger entry by entry and saying where it stops being trustworthy.

One verifier for both the service's `GET /v1/audit/verify` (rows from the database) and the
offline `policyflow audit verify` (lines of an export). It checks each checkpoint's signature
first, then takes entries in ledger order, keeping only the previous hash and a Merkle
frontier, so memory does not grow with the ledger. For each entry it hashes the stored
canonical bytes as the ledger did (`ledger.entry_hash`), checks the link to the previous
entry, that the columns kept for queries say what the hashed event says, and each signed
checkpoint's root and head at its size. In strict mode it also re-canonicalises every stored
event (`ledger.is_canonical`) and compares bytes, which catches a text that was rewritten
with every later hash recomputed but not in canonical form (the checkpoints catch the rest).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.ledger import GENESIS, Frontier, checkpoint_note, entry_hash, is_canonical, utc_text
from services.shared.signed_note import (
    ED25519,
    NoteError,
    Verifier,
    note_signed_by,
    parse_checkpoint,
    parse_vkey,
    split_note,
    vkey,
)

# Envelope fields that the ledger also keeps as columns (for queries): they must agree with
# the hashed text, or a query could be steered by an edited column the hash does not cover.
COLUMN_FIELDS = ("event_id", "programme_id", "assignment_id", "unit_id", "seq", "type")


class StoredEntry(NamedTuple):
    """One ledger entry as stored: a database row or an export line, columns in this order."""

    ledger_seq: Any
    event_id: Any
    programme_id: Any
    assignment_id: Any
    unit_id: Any
    seq: Any
    type: Any
    occurred_at: Any  # utc_text of the event's time
    prev_hash: Any
    hash: Any
    canonical: Any  # the hashed text, whose UTF-8 bytes are hashed; anything but a str is no text at all


@dataclass(frozen=True)
class Failure:
    ledger_seq: int | None  # None when a checkpoint's signature fails, before any entry is read
    reason: str


@dataclass(frozen=True)
class CheckpointRef:
    size: int
    root: str
    head: str


def log_verifier(key: str | bytes, origin: str | None = None) -> Verifier | None:
    """The log's key as a note verifier: a verifier key (name+keyid+base64), or a PEM public key
    named `origin` (None when the note names the log). None when the text is neither."""
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if "BEGIN PUBLIC KEY" not in text:
        try:
            return parse_vkey(text)
        except NoteError:
            return None
    try:
        public = serialization.load_pem_public_key(text.encode())
    except ValueError:
        return None
    if not isinstance(public, Ed25519PublicKey):
        return None
    return Verifier(origin or "", b"", ED25519, public.public_bytes_raw())


def checkpoint_signature_ok(cp: Mapping[str, Any], public_key: str | bytes) -> bool:
    """Is the checkpoint's C2SP note signed by the log's key, and does its body say the row's size and root?

    `public_key` is a PEM public key (the origin is then the note's) or a verifier key (which
    also fixes the origin). A checkpoint made before notes (no `note`) is checked against the
    legacy five-line text (ledger.checkpoint_note) with the PEM key.
    """
    try:
        note = cp.get("note")
        if note is None:
            return _legacy_signature_ok(cp, public_key)
        body, _ = split_note(str(note))
        claimed = parse_checkpoint(body)
        verifier = log_verifier(public_key, claimed.origin)
        if verifier is None or verifier.name != claimed.origin:
            return False
        if not verifier.key_id:
            verifier = parse_vkey(vkey(claimed.origin, verifier.public_key))
        return (
            note_signed_by(str(note), verifier) == body
            and claimed.size == int(cp["size"])
            and claimed.root.hex() == str(cp["root"])
        )
    except (NoteError, ValueError, KeyError, TypeError):
        return False


def _legacy_signature_ok(cp: Mapping[str, Any], public_key_pem: str | bytes) -> bool:
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


def utc_column(value: Any) -> str | None:
    """What the `occurred_at` column must hold for an event's `occurred_at`: `utc_text` of it, or None."""
    try:
        return utc_text(dt.datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def stored_bytes(canonical: Any) -> bytes | None:
    """The bytes to hash: the text's UTF-8 (a lone surrogate kept, so the hash fails on it).

    None for anything but text: a value stored as a BLOB or a number is no canonical text,
    even when its bytes would hash right.
    """
    return canonical.encode("utf-8", "surrogatepass") if isinstance(canonical, str) else None


class ChainVerifier:
    """Feed entries in ledger order; the first failure is kept and later entries are ignored.

    `checkpoints` are signed checkpoint mappings (size, root, head, created_at, signature),
    checked with `public_key`, or when it is None with each one's own `public_key` (the
    service keeps the key each was signed with).
    """

    def __init__(
        self, checkpoints: Iterable[Mapping[str, Any]], public_key: str | bytes | None = None, strict: bool = False
    ) -> None:
        self.strict = strict
        self.count = 0
        self.prev = GENESIS
        self.head = GENESIS.hex()
        self.frontier = Frontier()
        self.failure: Failure | None = None
        self.checkpoints_checked = 0
        self.pending: list[CheckpointRef] = []
        for cp in checkpoints:
            if not checkpoint_signature_ok(cp, cp.get("public_key", "") if public_key is None else public_key):
                self.failure = Failure(None, f"checkpoint of size {cp.get('size')}: bad signature")
                return
            self.pending.append(CheckpointRef(int(cp["size"]), str(cp["root"]), str(cp["head"])))
        self.pending.sort(key=lambda c: c.size)

    def feed(self, entry: StoredEntry) -> Failure | None:
        """Check one entry; returns the failure (this one's or an earlier one's), or None."""
        if self.failure is None:
            self.failure = self._check(self.count + 1, entry)
        return self.failure

    def _check(self, expected: int, entry: StoredEntry) -> Failure | None:
        if entry.ledger_seq != expected:
            reason = f"expected ledger_seq {expected}, found {entry.ledger_seq}: an entry is missing or out of order"
            return Failure(expected, reason)
        data = stored_bytes(entry.canonical)
        if data is None:
            return Failure(expected, "the entry has no canonical text")
        if entry.prev_hash != self.head:
            return Failure(expected, "prev_hash is not the previous entry's hash: the chain is broken here")
        digest = entry_hash(self.prev, data)
        digest_hex = digest.hex()
        if entry.hash != digest_hex:
            return Failure(expected, "hash is not SHA-256(prev_hash || canonical): the entry was altered")
        if self.strict and not is_canonical(data):
            return Failure(expected, "the stored text is not in canonical form (RFC 8785)")
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            return Failure(expected, "the stored text is not a JSON object")
        for name in COLUMN_FIELDS:
            column = getattr(entry, name)
            if column != event.get(name):
                return Failure(expected, f"column {name} ({column!r}) differs from the hashed event")
        if entry.occurred_at != utc_column(event.get("occurred_at")):
            return Failure(expected, f"column occurred_at ({entry.occurred_at!r}) differs from the hashed event")
        self.count, self.prev, self.head = expected, digest, digest_hex
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
