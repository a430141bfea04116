"""Ed25519 key pairs generated into a key directory on first start, one per purpose: the JWT key
(services/shared/auth.py), the audit log's checkpoint key and the witness's cosigning key.

Processes starting at once on a fresh directory would each make a key and overwrite the others'
(a signature by one failing against another's public half), so a pair is made under an exclusive
lock on a file next to it, each half written whole under a temporary name and then renamed into
place; the public half first, so whoever sees the private key finds its public half too.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def ensure_key_pair(key_dir: Path, private_name: str, public_name: str) -> tuple[Path, Path]:
    """(private, public) paths of the pair in `key_dir`, made on first call (private owner-only)."""
    key_dir.mkdir(parents=True, exist_ok=True)
    private, public = key_dir / private_name, key_dir / public_name
    if private.exists():
        return private, public
    with (key_dir / f".{private.stem}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if private.exists():  # made by another process while this one waited
            return private, public
        key = Ed25519PrivateKey.generate()
        _write_whole(
            public,
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            0o644,
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_whole(private, pem, 0o600)
    return private, public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _write_whole(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` so that a reader sees either no file or all of it."""
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
