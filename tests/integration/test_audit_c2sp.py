"""Checkpoints on a timer, published as C2SP signed notes, checked by a verifier written here from
the C2SP texts (signed-note, tlog-checkpoint) alone: no policyflow code is used to verify them."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.integration.audit_support import many_events, running, settings_for
from tests.support.publishing import publish
from tests.support.waiting import until

pytestmark = pytest.mark.usefixtures("event_stream")


def verify_checkpoint_note(note: str, verifier_key: str) -> tuple[str, int, bytes]:
    """c2sp.org/signed-note + c2sp.org/tlog-checkpoint, from the texts: (origin, size, root) or raise."""
    name, key_hex, key_b64 = verifier_key.split("+", 2)
    raw = base64.b64decode(key_b64)
    assert raw[0] == 0x01 and len(raw) == 33, "an Ed25519 vkey is 0x01 || 32-byte key"
    key_hash = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert key_hash.hex() == key_hex, "key id = SHA-256(name || LF || 0x01 || key)[:4]"
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    good = 0
    for line in signatures.rstrip("\n").split("\n"):
        dash, signer, blob = line.split(" ")
        assert dash == "\u2014"
        sig = base64.b64decode(blob)
        if signer != name or sig[:4] != key_hash:
            continue  # someone else's signature (a witness): ignored, as the spec says
        try:
            Ed25519PublicKey.from_public_bytes(raw[1:]).verify(sig[4:], text.encode())
            good += 1
        except InvalidSignature:
            raise AssertionError("bad note signature") from None
    assert good == 1, "exactly one signature by the log"
    origin, size, root, end = text.split("\n")
    assert origin == name and end == "" and size.isdigit()
    return origin, int(size), base64.b64decode(root)


async def test_a_grown_ledger_is_signed_within_the_interval_as_a_c2sp_note(tmp_path: Path, nats_url: str) -> None:
    events = many_events(2)  # 28 entries: far below CHECKPOINT_EVERY
    settings = settings_for(tmp_path, nats_url, checkpoint_every=1000, checkpoint_interval=0.5)
    async with running(settings) as svc:
        c, auth = svc.client, svc.auth()
        await publish(nats_url, events)

        async def signed() -> bool:
            r = await c.get("/v1/audit/checkpoints/latest", headers=auth)
            return r.status_code == 200 and r.json()["size"] == len(events)

        await until(signed, "a checkpoint of every entry, made by the timer", timeout=30)
        listing = (await c.get("/v1/audit/checkpoints", headers=auth)).json()
        assert listing["total"] == 1  # one growth, one checkpoint: the timer does not repeat itself
        note = (await c.get("/v1/audit/checkpoints/latest", headers={**auth, "Accept": "text/plain"})).text
        origin, size, root = verify_checkpoint_note(note, listing["verifier_key"])
        assert (origin, size, root.hex()) == ("policyflow.local/audit", len(events), listing["items"][0]["root"])

        forged = note.replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
        with pytest.raises(AssertionError, match="bad note signature"):
            verify_checkpoint_note(forged, listing["verifier_key"])
