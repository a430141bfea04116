"""The witness's Ed25519 key: made on first start in its own key directory (under a lock), and the
cosignature/v1 lines it signs (c2sp.org/tlog-cosignature)."""

from __future__ import annotations

import time
from pathlib import Path

from services.shared.keys import ensure_key_pair, load_private_key
from services.shared.signed_note import COSIGNATURE_V1, check_name, cosign, raw_public, vkey

PRIVATE_KEY_FILE = "witness-key.pem"
PUBLIC_KEY_FILE = "witness-public.pem"


class Cosigner:
    def __init__(self, key_dir: Path, name: str) -> None:
        self.name = check_name(name)
        private, _ = ensure_key_pair(key_dir, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE)
        self._key = load_private_key(private)
        # name+keyid+base64(0x04 || key): what a log or an auditor configures to check its cosignatures
        self.vkey = vkey(name, raw_public(self._key), COSIGNATURE_V1)

    def cosign(self, body: str) -> str:
        """The cosignature line over a checkpoint body, timestamped now (POSIX seconds)."""
        return cosign(body, self.name, self._key, int(time.time()))
