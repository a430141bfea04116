"""C2SP signed notes, checkpoints and cosignatures, pure (no I/O): what the audit log signs and the
witness cosigns, in the forms third-party tools read (Go's golang.org/x/mod/sumdb/note, Sigsum...).

- c2sp.org/signed-note: a note is UTF-8 text of newline-terminated lines, then an empty line,
  then signature lines ``— <key name> base64(key id (4 bytes) || signature)``. An Ed25519 key's
  id is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``; its verifier key (vkey) is
  ``<name>+<hex key id>+base64(0x01 || public key)``.
- c2sp.org/tlog-checkpoint: the note body of a log's checkpoint is three lines: the origin, the
  tree size in decimal, the RFC 6962 root hash in base64.
- c2sp.org/tlog-cosignature: a witness's Ed25519 cosignature/v1 signs ``cosignature/v1\\ntime
  <t>\\n`` followed by the checkpoint body; its signature is ``u64 big-endian t || Ed25519
  signature``; its key id uses the type byte 0x04 instead of 0x01.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014"  # the em dash that begins every signature line


class NoteError(ValueError):
    """Text that is not a well-formed note, checkpoint, signature line or verifier key."""


def key_id(name: str, key_type: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()[:4]


def raw_public(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()


def check_name(name: str) -> str:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def vkey(name: str, public_key: bytes, key_type: int = ED25519) -> str:
    """The verifier key text ``name+hex(key id)+base64(type || public key)``."""
    check_name(name)
    encoded = base64.b64encode(bytes([key_type]) + public_key).decode()
    return f"{name}+{key_id(name, key_type, public_key).hex()}+{encoded}"


@dataclass(frozen=True)
class Verifier:
    """A parsed verifier key: who signs, with which key, in which form (0x01 note, 0x04 cosignature)."""

    name: str
    key_id: bytes
    key_type: int
    public_key: bytes

    @property
    def text(self) -> str:
        return vkey(self.name, self.public_key, self.key_type)


def parse_vkey(text: str) -> Verifier:
    parts = text.strip().split("+", 2)  # base64 may hold "+" too
    if len(parts) != 3:
        raise NoteError("a verifier key is name+keyid+base64")
    name, hex_id, encoded = parts
    check_name(name)
    try:
        raw = base64.b64decode(encoded, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"verifier key of {name}: {exc}") from exc
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1) or len(wanted) != 4:
        raise NoteError(f"verifier key of {name}: not an Ed25519 key (type 0x01 or 0x04, 32 bytes)")
    if key_id(name, raw[0], raw[1:]) != wanted:
        raise NoteError(f"verifier key of {name}: the key id does not match the key")
    return Verifier(name, wanted, raw[0], raw[1:])


# --- checkpoint bodies ---------------------------------------------------------------------


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The tlog-checkpoint note body: origin, size, base64 root, each line ending in LF."""
    check_name(origin)
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def parse_checkpoint(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint body has an origin, a size and a root hash line")
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin or not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise NoteError("a checkpoint's second line is its size in decimal")
    try:
        digest = base64.b64decode(root, validate=True)
    except binascii.Error as exc:
        raise NoteError("a checkpoint's third line is its root hash in base64") from exc
    if len(digest) != 32:
        raise NoteError("a checkpoint's root hash has 32 bytes")
    return Checkpoint(origin, int(size), digest)


# --- notes and signature lines -------------------------------------------------------------


def split_note(note: str) -> tuple[str, list[str]]:
    """(body, signature lines without their LF) of a signed note."""
    body, sep, signatures = note.rpartition("\n\n")
    if not sep or not body or not note.endswith("\n"):
        raise NoteError("a signed note is its text, an empty line, then signature lines")
    lines = signatures[:-1].split("\n")
    if not all(line.startswith(DASH + " ") for line in lines):
        raise NoteError("every line after the empty line is a signature line (— name signature)")
    return body + "\n", lines


def signature_line(name: str, key_id_: bytes, signature: bytes) -> str:
    return f"{DASH} {name} {base64.b64encode(key_id_ + signature).decode()}"


def parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    """(key name, key id, signature) of ``— name base64(key id || signature)``."""
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != DASH:
        raise NoteError("a signature line is '— <name> <base64>'")
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except binascii.Error as exc:
        raise NoteError("a signature line ends in base64") from exc
    if len(raw) < 5:
        raise NoteError("a signature line holds a key id and a signature")
    return parts[1], raw[:4], raw[4:]


def sign_note(body: str, name: str, key: Ed25519PrivateKey) -> str:
    """``body`` signed by ``name`` with an Ed25519 note signature (type 0x01)."""
    if not body.endswith("\n"):
        raise NoteError("a note's text ends in a newline")
    line = signature_line(name, key_id(name, ED25519, raw_public(key)), key.sign(body.encode()))
    return f"{body}\n{line}\n"


def _verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def note_signed_by(note: str, verifier: Verifier) -> str | None:
    """The note's body when one of its signature lines is a valid note signature by ``verifier``, else None."""
    try:
        body, lines = split_note(note)
    except NoteError:
        return None
    for line in lines:
        try:
            name, kid, signature = parse_signature_line(line)
        except NoteError:
            continue
        mine = (name, kid) == (verifier.name, verifier.key_id) and verifier.key_type == ED25519
        if mine and _verify(verifier.public_key, signature, body.encode()):
            return body
    return None


# --- cosignatures (tlog-cosignature, Ed25519 cosignature/v1) -------------------------------


def cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(body: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    """A witness's cosignature line over a checkpoint body, at ``timestamp`` (POSIX seconds)."""
    signature = timestamp.to_bytes(8, "big") + key.sign(cosigned_message(body, timestamp))
    return signature_line(name, key_id(name, COSIGNATURE_V1, raw_public(key)), signature)


def cosignature_time(body: str, line: str, witness: Verifier) -> int | None:
    """The timestamp of ``line`` when it is ``witness``'s valid cosignature of ``body``, else None."""
    try:
        name, kid, raw = parse_signature_line(line)
    except NoteError:
        return None
    if (name, kid) != (witness.name, witness.key_id) or witness.key_type != COSIGNATURE_V1 or len(raw) != 72:
        return None
    timestamp = int.from_bytes(raw[:8], "big")
    if timestamp >= 2**63 or not _verify(witness.public_key, raw[8:], cosigned_message(body, timestamp)):
        return None
    return timestamp
