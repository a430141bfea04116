"""Bearer JWTs naming the unit, the role and the supervised area, signed with Ed25519 (EdDSA).

The signing key is generated into the key directory (under `var/`) on first use and never
committed; services only need the public key. Only EdDSA is accepted, so `alg=none` and
HMAC-confusion tokens fail verification.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import jwt

from contracts.base import Actor, UserRole
from contracts.ids import PROGRAMME_ID_PATTERN, UNIT_ID_PATTERN
from services.shared.keys import ensure_key_pair

AUDIENCE = "policyflow"
ISSUER = "policyflow-local"
PRIVATE_KEY_FILE = "jwt-signing-key.pem"
PUBLIC_KEY_FILE = "jwt-public-key.pem"
HUMAN_ROLES = (UserRole.DEPARTMENT, UserRole.SUPERVISOR, UserRole.VERIFIER, UserRole.AUDITOR, UserRole.ADMIN)
# Roles whose work can be limited to an area (`supervises`): without one they are city-wide.
SCOPED_ROLES = (UserRole.SUPERVISOR, UserRole.VERIFIER)
_UNIT_SCOPE = re.compile(r"unit:(" + UNIT_ID_PATTERN.strip("^$") + ")")
_TASK_SCOPE = re.compile(r"task:(" + PROGRAMME_ID_PATTERN.strip("^$") + r")/([1-9]\d{0,2})")
_PROGRAMME = re.compile(PROGRAMME_ID_PATTERN)
SCOPE_FORMS = "unit:UNIT_ID or task:PROGRAMME_ID/TASK_NO (e.g. unit:yuzhong, task:cq-2022-79/14)"


class AuthError(Exception):
    """A token that cannot be trusted; the message says why, without secrets."""


def parse_scope(value: str) -> tuple[str, str] | tuple[str, str, int]:
    """`unit:yuzhong` -> ("unit", "yuzhong"); `task:cq-2022-79/14` -> ("task", "cq-2022-79", 14)."""
    if m := _UNIT_SCOPE.fullmatch(value):
        return "unit", m[1]
    if m := _TASK_SCOPE.fullmatch(value):
        return "task", m[1], int(m[2])
    raise AuthError(f"supervised area {value!r} is not {SCOPE_FORMS}")


def check_area(role: UserRole, supervises: tuple[str, ...], programmes: tuple[str, ...]) -> None:
    """The same rules for a token being issued and one being read: an area only for supervisors and
    verifiers, each in one of the two forms; programme ids as the catalogue writes them."""
    if supervises and role not in SCOPED_ROLES:
        raise AuthError(
            f"only supervisors and verifiers have a supervised area, not role {role.value} "
            "(a lead department that reviews its tasks gets a supervisor token with --supervises task:P/N)"
        )
    for value in supervises:
        parse_scope(value)
    for pid in programmes:
        if not _PROGRAMME.fullmatch(pid):
            raise AuthError(f"programme {pid!r} is not a programme id (e.g. cq-2022-79)")


@dataclass(frozen=True)
class Principal:
    """Who is calling. `supervises` limits a supervisor or verifier to units (`unit:UNIT`, a district's
    督查室) and/or tasks (`task:PROGRAMME/N`, a lead department's); empty means city-wide.
    `programmes` limits anyone to those programmes; empty means all. What they may do with an
    assignment is decided in one place, services/shared/access.py."""

    sub: str
    role: UserRole
    unit_id: str | None
    supervises: tuple[str, ...] = ()
    programmes: tuple[str, ...] = ()
    issued_at: int = 0  # the token's `iat` (POSIX seconds): an account disabled later refuses it

    def actor(self) -> Actor:
        return Actor(sub=self.sub, role=self.role, unit_id=self.unit_id)

    @property
    def city_wide(self) -> bool:
        """A supervisor or verifier without an area: every unit and task (within `programmes`)."""
        return self.role in SCOPED_ROLES and not self.supervises

    @property
    def supervised_units(self) -> frozenset[str]:
        return frozenset(s[1] for s in map(parse_scope, self.supervises) if s[0] == "unit")

    @property
    def supervised_tasks(self) -> frozenset[tuple[str, int]]:
        return frozenset((s[1], s[2]) for s in map(parse_scope, self.supervises) if len(s) == 3)

    def in_programme(self, programme_id: str) -> bool:
        return not self.programmes or programme_id in self.programmes


def ensure_keys(key_dir: Path) -> tuple[Path, Path]:
    """Create the local JWT signing key pair on first start, under a lock (services/shared/keys.py)."""
    return ensure_key_pair(key_dir, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE)


def signing_key_available(key_dir: Path) -> bool:
    """Whether tokens can be signed here: the private key is there, or no key at all (the local
    stack makes the pair). A public key alone (production's read-only mount) must not be replaced."""
    return (key_dir / PRIVATE_KEY_FILE).exists() or not (key_dir / PUBLIC_KEY_FILE).exists()


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
    supervises: tuple[str, ...] = (),
    programmes: tuple[str, ...] = (),
) -> str:
    if role == UserRole.DEPARTMENT and not unit_id:
        raise AuthError("a department token needs a unit (--unit UNIT_ID)")
    check_area(role, supervises, programmes)
    private, _ = ensure_keys(key_dir)
    now = now or dt.datetime.now(dt.UTC)
    claims = {
        "sub": sub or (f"{role.value}:{unit_id}" if unit_id else role.value),
        "role": role.value,
        "unit_id": unit_id,
        "supervises": list(supervises),
        "programmes": list(programmes),
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
        raise AuthError("the token has expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise AuthError("the token is for another audience, not policyflow") from exc
    except jwt.InvalidSignatureError as exc:
        raise AuthError("invalid token: it was not signed with this installation's key") from exc
    except jwt.DecodeError as exc:
        raise AuthError("invalid token: it is not a token policyflow can read (cut short, or mistyped?)") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"invalid token: it does not say its {exc.claim}") from exc
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
    supervises, programmes = _strings(claims, "supervises"), _strings(claims, "programmes")
    check_area(role, supervises, programmes)
    issued = claims.get("iat")
    return Principal(
        sub=str(claims["sub"]),
        role=role,
        unit_id=unit_id,
        supervises=supervises,
        programmes=programmes,
        issued_at=issued if isinstance(issued, int) else 0,
    )


def _strings(claims: dict[str, object], name: str) -> tuple[str, ...]:
    """A list-of-strings claim (absent: empty); anything else is refused, never read as empty."""
    value = claims.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuthError(f"invalid token: its {name} is not a list of names")
    return tuple(dict.fromkeys(value))


class VerifiedTokens:
    """Tokens that passed `verify_token`, with their expiry: a bounded, least-recently-used memo.

    An Ed25519 check costs about 0.16 ms, as much as a whole page of the status read model, and
    a client sends the same token with every request. A token is remembered only after a full
    verification succeeded, under the exact token text and the public key that verified it (any
    other bytes, or a rotated key, miss and are verified in full). A hit is honoured only while
    `exp` is in the future, the condition PyJWT checks (`exp <= now` fails); from then on the
    token is verified again, which refuses it. What else PyJWT checks (signature, audience,
    required claims, iat and nbf not in the future) cannot change for the same bytes once passed.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[bytes, str], tuple[Principal, int]] = OrderedDict()

    def verify(self, token: str, public_key: bytes) -> Principal:
        key = (public_key, token)
        hit = self._seen.get(key)
        if hit is not None and hit[1] > time.time():
            self._seen.move_to_end(key)
            return hit[0]
        self._seen.pop(key, None)
        principal = verify_token(token, public_key)
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]  # verified just now
        self._seen[key] = (principal, int(exp))
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return principal


_VERIFIED = VerifiedTokens()


def verify_token_cached(token: str, public_key: bytes) -> Principal:
    """`verify_token`, remembering tokens that passed until they expire (see VerifiedTokens)."""
    return _VERIFIED.verify(token, public_key)
