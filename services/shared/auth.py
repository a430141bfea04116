"""Bearer JWTs naming the unit and role, signed with Ed25519 (EdDSA).

The signing key is generated into the key directory (under `var/`) on first use and never
committed; services only need the public key. Only EdDSA is accepted, so `alg=none` and
HMAC-confusion tokens fail verification.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.base import Actor, UserRole

AUDIENCE = "policyflow"
ISSUER = "policyflow-local"
PRIVATE_KEY_FILE = "jwt-signing-key.pem"
PUBLIC_KEY_FILE = "jwt-public-key.pem"
HUMAN_ROLES = (UserRole.DEPARTMENT, UserRole.SUPERVISOR, UserRole.VERIFIER, UserRole.AUDITOR)


class AuthError(Exception):
    """A token that cannot be trusted; the message says why, without secrets."""


@dataclass(frozen=True)
class Principal:
    sub: str
    role: UserRole
    unit_id: str | None

    def actor(self) -> Actor:
        return Actor(sub=self.sub, role=self.role, unit_id=self.unit_id)


def ensure_keys(key_dir: Path) -> tuple[Path, Path]:
    """Create the local signing key pair on first start (private key readable by owner only)."""
    key_dir.mkdir(parents=True, exist_ok=True)
    private, public = key_dir / PRIVATE_KEY_FILE, key_dir / PUBLIC_KEY_FILE
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        private.write_bytes(pem)
        private.chmod(0o600)
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private, public


def load_public_key(key_dir: Path) -> bytes:
    """The verification key. In production only the public key is there (a read-only secret mount);
    the local stack generates the pair on first start."""
    public = key_dir / PUBLIC_KEY_FILE
    if public.exists():
        return public.read_bytes()
    return ensure_keys(key_dir)[1].read_bytes()


def issue_token(
    key_dir: Path,
    role: UserRole,
    unit_id: str | None = None,
    sub: str | None = None,
    ttl: dt.timedelta = dt.timedelta(hours=12),
    now: dt.datetime | None = None,
) -> str:
    if role == UserRole.DEPARTMENT and not unit_id:
        raise AuthError("a department token needs a unit (--unit UNIT_ID)")
    private, _ = ensure_keys(key_dir)
    now = now or dt.datetime.now(dt.UTC)
    claims = {
        "sub": sub or (f"{role.value}:{unit_id}" if unit_id else role.value),
        "role": role.value,
        "unit_id": unit_id,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, private.read_bytes(), algorithm="EdDSA")


def verify_token(token: str, public_key: bytes) -> Principal:
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=["EdDSA"],
            audience=AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise AuthError("token is for another audience") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}") from exc
    try:
        role = UserRole(str(claims.get("role")))
    except ValueError as exc:
        raise AuthError("token names no known role") from exc
    if role not in HUMAN_ROLES:
        raise AuthError("token names no known role")
    unit_id = claims.get("unit_id")
    if role == UserRole.DEPARTMENT and not unit_id:
        raise AuthError("department token without a unit")
    return Principal(sub=str(claims["sub"]), role=role, unit_id=unit_id)
