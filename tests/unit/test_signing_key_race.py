"""Several processes starting at once on a fresh key directory make one signing key between them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.shared.auth import ensure_keys, load_public_key

STARTERS = 6
ROUNDS = 15


def _start(key_dir: str, gate: Any, out: Any) -> None:
    gate.wait()
    try:
        private, _ = ensure_keys(Path(key_dir))
        key = serialization.load_pem_private_key(private.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        derived = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        out.put((derived, load_public_key(Path(key_dir))))
    except Exception as exc:  # noqa: BLE001 - a torn or mismatched key file: the test names it
        out.put((repr(exc).encode(), b""))


def test_processes_starting_at_once_make_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    seen: list[int] = []
    for round_no in range(ROUNDS):
        key_dir = tmp_path / f"keys-{round_no}"
        gate, out = ctx.Barrier(STARTERS), ctx.Queue()
        procs = [ctx.Process(target=_start, args=(str(key_dir), gate, out)) for _ in range(STARTERS)]
        for p in procs:
            p.start()
        answers = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(60)
        assert all(p.exitcode == 0 for p in procs)
        on_disk = (key_dir / "jwt-public-key.pem").read_bytes()
        # every starter signs with the key whose public half is on disk, and reads that public half
        assert {derived for derived, _ in answers} == {on_disk}, f"round {round_no}: more than one key"
        assert {public for _, public in answers} == {on_disk}
        assert (key_dir / "jwt-signing-key.pem").stat().st_mode & 0o077 == 0
        seen.append(len(answers))
    assert seen == [STARTERS] * ROUNDS
