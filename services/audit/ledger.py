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

from services.shared.merkle import (  # the tree lives in services.shared so the witness shares it
    EMPTY_ROOT,
    Frontier,
    consistency_ranges,
    fold_pieces,
    inclusion_ranges,
    largest_power_of_two_below,
    leaf_hash,
    merkle_root,
    mth,
    node_hash,
    perfect_pieces,
    verify_consistency,
    verify_inclusion,
)

GENESIS = bytes(32)


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


# --- signed checkpoints --------------------------------------------------------------------

CHECKPOINT_NOTE_VERSION = "policyflow-audit-checkpoint/v1"


def checkpoint_note(size: int, root_hex: str, head_hex: str, created_at: str) -> bytes:
    """The exact bytes a checkpoint's Ed25519 signature covers (like a CT signed tree head).

    Five LF-terminated ASCII lines: the version tag, ``size <n>``, ``root <hex>`` (Merkle root
    of the first n entries), ``head <hex>`` (hash of entry n), ``created_at <UTC time>``.
    """
    lines = [CHECKPOINT_NOTE_VERSION, f"size {size}", f"root {root_hex}", f"head {head_hex}"]
    return "".join(line + "\n" for line in [*lines, f"created_at {created_at}"]).encode("ascii")


__all__ = [  # the Merkle names are re-exported: callers of the ledger's definitions need one import
    "CHECKPOINT_NOTE_VERSION",
    "EMPTY_ROOT",
    "Frontier",
    "GENESIS",
    "canonical_bytes",
    "canonical_json",
    "chain",
    "checkpoint_note",
    "consistency_ranges",
    "entry_hash",
    "fold_pieces",
    "inclusion_ranges",
    "is_canonical",
    "largest_power_of_two_below",
    "leaf_hash",
    "merkle_root",
    "mth",
    "node_hash",
    "perfect_pieces",
    "utc_text",
    "verify_consistency",
    "verify_inclusion",
]
