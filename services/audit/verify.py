"""Walking a ledger entry by entry and saying where it stops being trustworthy.

One checker for both the service's `GET /v1/audit/verify` (rows from the database) and the
offline `policyflow audit verify` (lines of an export): feed it entries in order; it keeps
only the previous hash and a Merkle frontier, so memory does not grow with the ledger.

Each entry's text is parsed once, and that one parse serves the canonical-form check and the
column checks. The canonical-form rule is `ledger.is_canonical` (re-serialising the parse with
the stdlib `json.dumps` arguments reproduces the text); `canonical_event` decides it with orjson
when that provably gives the same answer, and with the stdlib otherwise (see there).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.ledger import GENESIS, LEAF_PREFIX, NODE_PREFIX, Frontier, canonical_text, checkpoint_note, utc_text

# Envelope fields that the ledger also keeps as columns (for queries): they must agree with
# the hashed text, or a query could be steered by an edited column the hash does not cover.
COLUMN_FIELDS = ("event_id", "programme_id", "assignment_id", "unit_id", "seq", "type")

# The layout of a row for `ChainVerifier.feed_row`: the sequence, the COLUMN_FIELDS in their
# order, the time column, the chain, and the hashed text (str, or its UTF-8 bytes).
ROW_COLUMNS = ("ledger_seq", *COLUMN_FIELDS, "occurred_at", "prev_hash", "hash", "canonical")
# An event's COLUMN_FIELDS as a tuple, in one call (KeyError when one is missing).
_COLUMN_FIELDS_OF = operator.itemgetter(*COLUMN_FIELDS)


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


# --- canonical form, parsed once -----------------------------------------------------------

# Float tokens, found fast in a "shape" of the text: every digit read as 0, 'E' as 'e', '+' as '-',
# and ',' and '[' as ':' (all three are what stands before a value in a compact text). A float
# token (a fraction or an exponent) then reads as below, after a ':' and before ':', ']' or '}'.
# Texts without "0.0" or "0e" anywhere in their shape (most events) have no float at all.
_SHAPE = bytes.maketrans(b"123456789E+,[", b"000000000e-::")
_FLOAT_TOKEN = re.compile(rb":(-?0+(?:\.0+(?:e-?0+)?|e-?0+))(?=[:\]}])")
_REPR_FLOATS: set[bytes] = set()  # float tokens already found to be repr(float(token)): a pure test
_REPR_FLOATS_MAX = 4096


def _floats_are_repr(data: bytes) -> bool:
    """Is every float token `t` of a compact JSON text `repr(float(t))`, what the stdlib writes?

    Every real float token is found: in a compact text a value follows ':', ',' or '[' and is
    followed by ',', ']' or '}'. A match inside a string (a hex digest, a narrative) can only
    fail the test, which sends the text to the stdlib: never to a wrong answer.
    """
    shape = data.translate(_SHAPE)
    if b"0.0" not in shape and b"0e" not in shape:
        return True
    for match in _FLOAT_TOKEN.finditer(shape):
        token = data[match.start(1) : match.end(1)]
        if token in _REPR_FLOATS:
            continue
        try:
            if repr(float(token)).encode() != token:
                return False
        except ValueError:
            return False
        if len(_REPR_FLOATS) < _REPR_FLOATS_MAX:
            _REPR_FLOATS.add(token)
    return True


def canonical_event(data: bytes) -> dict[str, Any] | None:
    """The parsed event when `data` (UTF-8) is a JSON object in canonical form, else None.

    The rule is the stdlib's (`ledger.is_canonical`): `json.loads` then `canonical_text`
    gives the text back. orjson's `dumps(loads(b), OPT_SORT_KEYS)` writes the same bytes as
    that for every value a JSON text can hold (same key order, same string escapes, same
    integers, verified in tests) except floats, which it may format differently (`1e-05` vs
    `1e-5`). So when orjson reproduces the bytes *and* every float token `t` in them is
    `repr(float(t))` (what the stdlib writes for the float it parses from `t`), the stdlib
    reproduces them too, and the text is canonical. Anything else (a float orjson formats
    differently, an integer beyond 64 bits, NaN, nesting orjson refuses, a text that is
    not canonical at all) is decided by the stdlib itself, exactly as before.
    """
    try:
        event = orjson.loads(data)
        fast = type(event) is dict and orjson.dumps(event, option=orjson.OPT_SORT_KEYS) == data
    except (ValueError, TypeError):  # orjson's decode and encode errors subclass these
        fast = False
    if fast and _floats_are_repr(data):
        return event  # type: ignore[no-any-return]
    return _canonical_event_stdlib(data)


def _canonical_event_stdlib(data: bytes) -> dict[str, Any] | None:
    try:
        text = data.decode("utf-8")
        event = json.loads(text)
        canonical = canonical_text(event) == text
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        return None
    return event if canonical and isinstance(event, dict) else None


def _utc(value: Any) -> str | None:
    try:
        return utc_text(dt.datetime.fromisoformat(str(value)))
    except ValueError:
        return None


# How pydantic writes an aware UTC datetime (every event's occurred_at): whole seconds, an
# optional fraction of up to 6 digits, 'Z'.
_Z_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.([0-9]{1,6}))?Z")


def utc_column(value: Any) -> str | None:
    """What the `occurred_at` column must hold for an event's `occurred_at`: `utc_text` of it, or None.

    For text already in UTC ('...Z'), once `fromisoformat` has accepted it (a real date and
    time), `utc_text` only pads the fraction to 6 digits: that is done on the text, which
    saves the conversion and formatting. Any other form goes the long way.
    """
    if type(value) is str and (m := _Z_TIME.fullmatch(value)) is not None:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return f"{value[:19]}.{(m[1] or '').ljust(6, '0')}Z"
    return _utc(value)


# --- the chain -----------------------------------------------------------------------------


class ChainVerifier:
    """Feed entries in ledger order; the first failure is kept and later entries are ignored."""

    def __init__(self, checkpoints: list[CheckpointRef] | None = None) -> None:
        self.count = 0
        self.prev = GENESIS
        self._prev_hex = GENESIS.hex()
        self.frontier = Frontier()
        self.failure: Failure | None = None
        self.pending = sorted(checkpoints or [], key=lambda c: c.size)
        self._next_checkpoint = self.pending[0].size if self.pending else -1
        self.checkpoints_checked = 0
        self._digest, self._digest_hex = GENESIS, self._prev_hex  # the entry being checked

    @property
    def head(self) -> str:
        return self._prev_hex

    def feed(self, entry: dict[str, Any], columns: bool = False) -> Failure | None:
        """Check one entry: ledger_seq, prev_hash, hash, canonical text (and its columns if asked).

        Only the columns the entry has are compared (an export line has them all).
        """
        if self.failure is not None:
            return self.failure
        expected = self.count + 1
        text = entry.get("canonical")
        event = self._text(expected, entry.get("ledger_seq"), entry.get("prev_hash"), entry.get("hash"),
                           text if isinstance(text, str) else None)  # fmt: skip
        if isinstance(event, Failure):
            self.failure = event
            return event
        for name in COLUMN_FIELDS if columns else ("event_id",):
            if name in entry and entry[name] != event.get(name):
                return self._fail(expected, f"column {name} ({entry[name]!r}) differs from the hashed event")
        if columns and "occurred_at" in entry and entry["occurred_at"] != utc_column(event.get("occurred_at")):
            return self._fail(expected, f"column occurred_at ({entry['occurred_at']!r}) differs from the hashed event")
        return self._accept(expected)

    def feed_row(self, row: Sequence[Any]) -> Failure | None:
        """Check one ledger row laid out as ROW_COLUMNS, every column included (the database's view).

        The same checks as `feed(entry, columns=True)`, without building a dict per row.
        """
        if self.failure is not None:
            return self.failure
        expected = self.count + 1
        event = self._text(expected, row[0], row[8], row[9], row[10])
        if isinstance(event, Failure):
            self.failure = event
            return event
        fields = (event.get("event_id"), event.get("programme_id"), event.get("assignment_id"),
                  event.get("unit_id"), event.get("seq"), event.get("type"))  # fmt: skip
        if fields != tuple(row[1:7]):  # then say which one, as `feed` does
            for name, column, value in zip(COLUMN_FIELDS, row[1:7], fields, strict=True):
                if column != value:
                    return self._fail(expected, f"column {name} ({column!r}) differs from the hashed event")
        if row[7] != utc_column(event.get("occurred_at")):
            return self._fail(expected, f"column occurred_at ({row[7]!r}) differs from the hashed event")
        return self._accept(expected)

    def feed_rows(self, rows: Iterable[Sequence[Any]]) -> Failure | None:
        """`feed_row` for each row in turn, up to the first failure.

        The loop is the path of a row that passes every check, with `feed_row`'s work inlined
        (on a whole-ledger walk, calls and attribute lookups per row were a good share of the
        time), the Merkle frontier's append included (`ledger.Frontier.append`, on its list of
        pieces; its size is the count, written back before anything else reads it). A row it
        does not accept outright, for whatever reason (a column field missing from the event
        included), goes to `feed_row`, which finds and words the failure: the checks themselves
        are written once, there.
        """
        if self.failure is not None:
            return self.failure
        sha256, parse, utc, fields_of = hashlib.sha256, canonical_event, utc_column, _COLUMN_FIELDS_OF
        frontier = self.frontier
        push, pop = frontier.pieces.append, frontier.pieces.pop
        count, prev, prev_hex, next_checkpoint = self.count, self.prev, self._prev_hex, self._next_checkpoint
        for row in rows:
            data = row[10]
            if row[0] == count + 1 and type(data) is bytes and row[8] == prev_hex:
                digest = sha256(prev + data).digest()  # ledger.entry_hash, on the bytes at hand
                digest_hex = digest.hex()
                if row[9] == digest_hex and (event := parse(data)) is not None:
                    try:
                        fields = fields_of(event)
                    except KeyError:
                        fields = None
                    if fields == tuple(row[1:7]) and row[7] == utc(event.get("occurred_at")):
                        leaf, n = sha256(LEAF_PREFIX + digest).digest(), count  # ledger.leaf_hash
                        while n & 1:
                            leaf = sha256(NODE_PREFIX + pop() + leaf).digest()  # ledger.node_hash
                            n >>= 1
                        push(leaf)
                        count, prev, prev_hex = count + 1, digest, digest_hex
                        if count != next_checkpoint:
                            continue
                        self.count, self.prev, self._prev_hex = count, prev, prev_hex
                        frontier.size = count
                        self.failure = self._at_checkpoint()
                        if self.failure is not None:
                            return self.failure
                        next_checkpoint = self._next_checkpoint
                        continue
            self.count, self.prev, self._prev_hex = count, prev, prev_hex
            frontier.size = count
            if self.feed_row(row) is not None:
                return self.failure
            count, prev, prev_hex, next_checkpoint = self.count, self.prev, self._prev_hex, self._next_checkpoint
        self.count, self.prev, self._prev_hex = count, prev, prev_hex
        frontier.size = count
        return None

    def _text(
        self, expected: int, seq: Any, prev_hash: Any, hash_: Any, text: str | bytes | None
    ) -> Failure | dict[str, Any]:
        """The sequence, the chain link, the hash and the canonical form; the parsed event if all hold."""
        if seq != expected:
            reason = f"expected ledger_seq {expected}, found {seq}: an entry is missing or out of order"
            return Failure(expected, reason)
        if text is None:
            return Failure(expected, "the entry has no canonical text")
        if prev_hash != self._prev_hex:
            return Failure(expected, "prev_hash is not the previous entry's hash: the chain is broken here")
        try:
            data = text.encode("utf-8") if isinstance(text, str) else text
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 text, so no hash can be over it
            data = None
        # ledger.entry_hash, on the bytes already at hand: SHA-256(previous 32 bytes || UTF-8 text)
        digest = hashlib.sha256(self.prev + data).digest() if data is not None else b""
        digest_hex = digest.hex()
        if data is None or hash_ != digest_hex:
            return Failure(expected, "hash is not SHA-256(prev_hash || canonical): the entry was altered")
        event = canonical_event(data)
        if event is None:
            return Failure(expected, "the stored text is not in canonical form")
        self._digest, self._digest_hex = digest, digest_hex
        return event

    def _fail(self, ledger_seq: int, reason: str) -> Failure:
        self.failure = Failure(ledger_seq, reason)
        return self.failure

    def _accept(self, expected: int) -> Failure | None:
        self.count, self.prev, self._prev_hex = expected, self._digest, self._digest_hex
        self.frontier.append_entry(self._digest)
        if expected == self._next_checkpoint:
            self.failure = self._at_checkpoint()
        return self.failure

    def _at_checkpoint(self) -> Failure | None:
        while self.pending and self.pending[0].size == self.count:
            cp = self.pending.pop(0)
            if cp.head != self.head or cp.root != self.frontier.root().hex():
                return Failure(cp.size, f"the first {cp.size} entries do not match the signed checkpoint's root")
            self.checkpoints_checked += 1
        self._next_checkpoint = self.pending[0].size if self.pending else -1
        return None

    def finish(self) -> Failure | None:
        """After the last entry: a checkpoint beyond the end means entries were removed."""
        if self.failure is None and self.pending:
            cp = self.pending[0]
            self.failure = Failure(
                self.count + 1, f"the ledger ends at {self.count} entries but a signed checkpoint covers {cp.size}"
            )
        return self.failure
