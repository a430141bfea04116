"""Hostile requests on access (OWASP API broken authentication, broken object- and function-level
authorisation): forged, stale and malformed tokens, refused 401 by every service, and real tokens
reaching for another unit's assignments or another role's actions, refused 403.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import jwt

from services.shared.auth import AUDIENCE, ISSUER, ensure_keys
from tests.faults.attacks import PLAN, REPORT, YEAR, Attack, World


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(role: str = "supervisor", unit: str | None = None, **extra: Any) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    base = {
        "sub": f"hostile-{uuid.uuid4().hex[:8]}",
        "role": role,
        "unit_id": unit,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + 3600,
    }
    return {k: v for k, v in {**base, **extra}.items() if v is not ...}


def unsigned(payload: dict[str, Any]) -> str:
    """alg=none: a header, the claims and an empty signature."""
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}."


def hmac_with_public_key(payload: dict[str, Any], public_pem: bytes) -> str:
    """The algorithm-confusion attack: HS256 keyed with the (public) verification key."""
    head = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{head}.{b64(hmac.new(public_pem, head.encode(), hashlib.sha256).digest())}"


def access_attacks(w: World) -> Iterator[Attack]:
    """Requests whose caller must be turned away: 401 for a token that is not ours, 403 for one that is,
    asking for what its role or unit may not do."""
    s, own, other = w.stack, w.own, w.other
    key_dir = s.key_dir
    private, public = ensure_keys(key_dir)
    foreign_private, _ = ensure_keys(key_dir.parent / "foreign-keys")
    unit, stranger = own.rsplit(".", 1)[1], other.rsplit(".", 1)[1]
    report, dispatch, checkpoint = (
        f"/v1/assignments/{own}/reports",
        f"/v1/programmes/{w.pid}/dispatch",
        "/v1/audit/checkpoints",
    )

    def signed(c: dict[str, Any], key: bytes | None = None, alg: str = "EdDSA") -> dict[str, str]:
        return {"Authorization": f"Bearer {jwt.encode(c, key or private.read_bytes(), algorithm=alg)}"}

    # ---- broken authentication: 401 and auth.rejected, on every service --------------------------------
    forged: list[tuple[str, dict[str, str], str]] = [
        ("alg=none", {"Authorization": f"Bearer {unsigned(claims('department', unit))}"}, ""),
        (
            "HS256 keyed with the public key",
            {"Authorization": "Bearer " + hmac_with_public_key(claims("supervisor"), public.read_bytes())},
            "",
        ),
        ("expired", signed(claims("department", unit, exp=int(dt.datetime.now(dt.UTC).timestamp()) - 60)), "expired"),
        ("wrong signature (another key)", signed(claims("department", unit), foreign_private.read_bytes()), ""),
        ("wrong audience", signed(claims("department", unit, aud="someone-else")), "audience"),
        ("no audience", signed(claims("department", unit, aud=...)), ""),
        ("no expiry", signed(claims("department", unit, exp=...)), ""),
        ("unknown role", signed(claims("emperor")), "role"),
        ("role system (not a person)", signed(claims("system")), "role"),
        ("department without a unit", signed(claims("department", None)), "unit"),
        ("not a JWT", {"Authorization": "Bearer not.a.jwt"}, ""),
        ("token of a JWT header only", {"Authorization": f"Bearer {b64(b'{}')}"}, ""),
    ]
    for name, headers, needle in forged:
        yield Attack(
            f"401 {name}: report", "progress", "POST", report, headers, {401}, "auth.rejected", REPORT, needle=needle
        )
        yield Attack(
            f"401 {name}: dispatch", "assignment", "POST", dispatch, headers, {401}, "auth.rejected", needle=needle
        )
        yield Attack(
            f"401 {name}: checkpoint", "audit", "POST", checkpoint, headers, {401}, "auth.rejected", needle=needle
        )

    # ---- broken object / function level authorisation: 403 and auth.* ----------------------------------
    def as_(role: str, u: str | None = None) -> tuple[dict[str, str], str]:
        sub = f"hostile-{role}-{uuid.uuid4().hex[:8]}"
        return s.headers(role, u, sub=sub), sub

    review = {"decision": "approve", "comment": "自己批准自己"}
    verdict = {"decision": "pass", "findings": "自己验收自己"}
    cases: list[tuple[str, str, str, str, tuple[str, str | None], Any, str]] = [
        (
            "another unit reports on it",
            "progress",
            "POST",
            f"/v1/assignments/{other}/reports",
            ("department", unit),
            REPORT,
            "auth.refused",
        ),
        (
            "another unit submits its plan",
            "progress",
            "POST",
            f"/v1/assignments/{other}/plans",
            ("department", unit),
            PLAN,
            "auth.refused",
        ),
        (
            "another unit accepts it",
            "progress",
            "POST",
            f"/v1/assignments/{own}/accept",
            ("department", stranger),
            None,
            "auth.refused",
        ),
        (
            "another unit reads it",
            "progress",
            "GET",
            f"/v1/assignments/{other}",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "another unit reads its inbox",
            "assignment",
            "GET",
            f"/v1/units/{stranger}/assignments",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "another unit asks for its status",
            "progress",
            "GET",
            f"/v1/status?unit_id={stranger}",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "a department approves its own plan",
            "progress",
            "POST",
            f"/v1/assignments/{other}/plans/{YEAR}/review",
            ("department", stranger),
            review,
            "auth.refused",
        ),
        (
            "a department passes its own verification",
            "progress",
            "POST",
            f"/v1/assignments/{own}/verification",
            ("department", unit),
            verdict,
            "auth.refused",
        ),
        (
            "a department cancels its own assignment",
            "progress",
            "POST",
            f"/v1/assignments/{own}/cancel",
            ("department", unit),
            {"reason": "不想做了"},
            "auth.refused",
        ),
        (
            "a department dispatches the programme",
            "assignment",
            "POST",
            f"/v1/programmes/{w.pid}/dispatch",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "a department reads the audit ledger",
            "audit",
            "GET",
            "/v1/audit/events",
            ("department", unit),
            None,
            "auth.refused",
        ),
        (
            "an auditor reports",
            "progress",
            "POST",
            f"/v1/assignments/{own}/reports",
            ("auditor", None),
            REPORT,
            "auth.refused",
        ),
        (
            "an auditor approves",
            "progress",
            "POST",
            f"/v1/assignments/{other}/plans/{YEAR}/review",
            ("auditor", None),
            review,
            "auth.refused",
        ),
        (
            "an auditor cancels",
            "progress",
            "POST",
            f"/v1/assignments/{own}/cancel",
            ("auditor", None),
            {"reason": "x"},
            "auth.refused",
        ),
        (
            "an auditor accepts",
            "progress",
            "POST",
            f"/v1/assignments/{own}/accept",
            ("auditor", None),
            None,
            "auth.refused",
        ),
        (
            "an auditor makes a checkpoint",
            "audit",
            "POST",
            "/v1/audit/checkpoints",
            ("auditor", None),
            None,
            "auth.refused",
        ),
        (
            "a verifier approves a plan",
            "progress",
            "POST",
            f"/v1/assignments/{other}/plans/{YEAR}/review",
            ("verifier", None),
            review,
            "auth.refused",
        ),
        (
            "a supervisor reports for a unit",
            "progress",
            "POST",
            f"/v1/assignments/{own}/reports",
            ("supervisor", None),
            REPORT,
            "auth.refused",
        ),
    ]
    for name, service, method, path, (role, u), body, event in cases:
        headers, sub = as_(role, u)
        yield Attack(f"403 {name}", service, method, path, headers, {403}, event, body, sub=sub)
