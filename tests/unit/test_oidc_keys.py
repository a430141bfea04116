"""The provider's key set: fetched again for an unknown kid, but not more often than the rate limit;
algorithms outside the allow-list refused before any key is looked up; claims mapped or refused."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
import pytest

from contracts.base import UserRole
from services.shared.auth import AuthError
from services.shared.oidc import AccessRefused, OidcSettings, Provider
from tests.support.oidc_provider import new_key

ISSUER = "https://idp.example.gov.cn"


class FakeProvider:
    """Discovery document and JWKS over a MockTransport, counting the JWKS fetches."""

    def __init__(self) -> None:
        self.keys = [new_key("k1")]
        self.jwks_fetches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        self.jwks_fetches += 1
        public = [{k: v for k, v in key.items() if k in ("kty", "n", "e", "kid", "alg", "use")} for key in self.keys]
        return httpx.Response(200, json={"keys": public})

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        jwk = next(k for k in self.keys if k["kid"] == (kid or self.keys[0]["kid"]))
        private = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
        return jwt.encode(claims, private, algorithm="RS256", headers={"kid": jwk["kid"]})  # type: ignore[arg-type]


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "u1", "iss": ISSUER, "aud": "policyflow", "iat": now, "exp": now + 300, "role": "supervisor"}
    return {**base, **changes}


def provider(fake: FakeProvider, min_refresh: float) -> Provider:
    settings = OidcSettings(issuer=ISSUER, jwks_min_refresh=min_refresh)
    return Provider(settings, transport=httpx.MockTransport(fake.handler))


async def test_an_unknown_kid_refetches_the_keys_at_most_once_per_interval() -> None:
    fake = FakeProvider()
    p = provider(fake, min_refresh=3600)
    assert (await p.verify(fake.sign(claims()))).role == UserRole.SUPERVISOR
    assert fake.jwks_fetches == 1
    for _ in range(20):  # made-up kids: refused, and the provider is not asked again within the interval
        with pytest.raises(AuthError, match="kid nope"):
            await p.verify(_forged({"alg": "RS256", "kid": "nope"}))
    assert fake.jwks_fetches == 1

    fake.keys.insert(0, new_key("k2"))  # rotated: with no interval left to wait, the new kid is fetched
    p_now = provider(fake, min_refresh=0)
    await p_now.verify(fake.sign(claims(), kid="k1"))
    before = fake.jwks_fetches
    assert (await p_now.verify(fake.sign(claims(), kid="k2"))).sub == "u1"
    assert fake.jwks_fetches == before  # k2 was already in the set fetched for k1
    fake.keys.insert(0, new_key("k3"))
    await p_now.verify(fake.sign(claims(), kid="k3"))
    assert fake.jwks_fetches == before + 1


def _forged(header: dict[str, str]) -> str:
    """A token with this header and a signature of nobody's key."""
    enc = jwt.utils.base64url_encode
    head = enc(json.dumps(header).encode()).decode()
    body = enc(json.dumps(claims()).encode()).decode()
    return f"{head}.{body}.{enc(b'not-a-signature').decode()}"


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_algorithms_outside_the_allow_list_are_refused_before_any_key(alg: str) -> None:
    fake = FakeProvider()
    p = provider(fake, min_refresh=0)
    with pytest.raises(AuthError, match=f"algorithm '{alg}' is not accepted"):
        await p.verify(_forged({"alg": alg, "kid": "k1"}))
    assert fake.jwks_fetches == 0


def test_an_hmac_algorithm_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="HS256 not allowed"):
        Provider(OidcSettings(issuer=ISSUER, algorithms=["RS256", "HS256"]))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"role": "mayor"}, "names no policyflow role"),
        ({"role": "department"}, "needs the claim unit_id"),
        ({"role": "department", "unit_id": "nowhere"}, "unit nowhere is not a known unit"),
        ({"supervises": ["district:yuzhong"]}, "is not unit:UNIT_ID or task:PROGRAMME_ID/TASK_NO"),
        ({"role": "auditor", "supervises": ["unit:yuzhong"]}, "only supervisors and verifiers"),
    ],
)
async def test_claims_policyflow_does_not_know_are_refused_with_the_reason(
    changes: dict[str, Any], reason: str
) -> None:
    fake = FakeProvider()

    async def known(unit_id: str) -> bool:
        return unit_id == "yuzhong"

    with pytest.raises(AccessRefused, match=reason):
        await provider(fake, 0).verify(fake.sign(claims(**changes)), known)


async def test_claim_names_are_configuration() -> None:
    fake = FakeProvider()
    settings = OidcSettings(issuer=ISSUER, role_claim="pf_role", unit_claim="org", scope_claim="area")
    p = Provider(settings, transport=httpx.MockTransport(fake.handler))
    who = await p.verify(fake.sign(claims(role=None, pf_role="supervisor", org="yuzhong", area="unit:yuzhong")))
    assert (who.role, who.unit_id, who.supervises) == (UserRole.SUPERVISOR, "yuzhong", ("unit:yuzhong",))
