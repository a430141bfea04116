"""A verifier of C2SP signed notes, checkpoints and cosignatures written from the specifications
alone (c2sp.org/signed-note, tlog-checkpoint, tlog-cosignature), so that the tests check
policyflow's notes the way someone else's tool would: nothing here comes from policyflow's code.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _vkey(verifier_key: str, key_type: int) -> tuple[str, bytes, bytes]:
    """(name, key id, 32-byte public key) of ``name+hex(key id)+base64(type || key)``."""
    name, key_hex, key_b64 = verifier_key.split("+", 2)
    raw = base64.b64decode(key_b64)
    assert raw[0] == key_type and len(raw) == 33, f"an Ed25519 vkey of type {key_type:#04x} is type || 32-byte key"
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert key_id.hex() == key_hex, "key id = SHA-256(name || LF || type || key)[:4]"
    return name, key_id, raw[1:]


def _signature_lines(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """(text, [(key name, base64-decoded signature)]) of a note: the text ends at the last empty line."""
    text, _, signatures = note.rpartition("\n\n")
    lines = []
    for line in signatures.rstrip("\n").split("\n"):
        dash, signer, blob = line.split(" ")
        assert dash == "\u2014", "a signature line starts with an em dash"
        lines.append((signer, base64.b64decode(blob)))
    return text + "\n", lines


def verify_checkpoint_note(note: str, verifier_key: str) -> tuple[str, int, bytes]:
    """(origin, size, root) of a checkpoint signed by the log `verifier_key` (type 0x01), or raise."""
    name, key_id, public = _vkey(verifier_key, 0x01)
    text, lines = _signature_lines(note)
    good = 0
    for signer, sig in lines:
        if signer != name or sig[:4] != key_id:
            continue  # someone else's signature (a witness): ignored, as the spec says
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(sig[4:], text.encode())
            good += 1
        except InvalidSignature:
            raise AssertionError("bad note signature") from None
    assert good == 1, "exactly one signature by the log"
    origin, size, root, end = text.split("\n")
    assert origin == name and end == "" and size.isdigit()
    return origin, int(size), base64.b64decode(root)


def verify_cosignature(checkpoint_text: str, line: str, witness_key: str) -> int:
    """The timestamp of `line` when it is the witness's Ed25519 cosignature/v1 of the checkpoint text
    (origin, size and root lines, each ending in LF), or raise."""
    name, key_id, public = _vkey(witness_key, 0x04)
    dash, signer, blob = line.rstrip("\n").split(" ")
    sig = base64.b64decode(blob)
    assert dash == "\u2014" and signer == name and sig[:4] == key_id, "not this witness's signature line"
    assert len(sig) == 4 + 8 + 64, "key id, u64 timestamp, Ed25519 signature"
    timestamp = int.from_bytes(sig[4:12], "big")
    assert timestamp < 2**63
    message = f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text.encode()
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig[12:], message)
    except InvalidSignature:
        raise AssertionError("bad cosignature") from None
    return timestamp


def cosignatures_in(note: str, witness_key: str) -> list[int]:
    """Timestamps of the witness's valid cosignatures among a note's signature lines."""
    name = witness_key.split("+", 1)[0]
    text, _, signatures = note.rpartition("\n\n")
    return [
        verify_cosignature(text + "\n", line, witness_key)
        for line in signatures.rstrip("\n").split("\n")
        if line.split(" ")[1] == name
    ]
