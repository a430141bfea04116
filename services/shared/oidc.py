"""Single sign-on: an OpenID Connect provider's JWT access tokens (RFC 9068) as bearer tokens.

With OIDC_ISSUER set, every service accepts the provider's access tokens: the signature by a key
of the provider's JWKS (`jwks_uri` of its discovery document), the issuer, the audience
(OIDC_AUDIENCE, default `policyflow`), the expiry, and an algorithm from OIDC_ALGORITHMS
(never `none`, never an HMAC one: the key set is public). PyJWT does the JOSE work. Keys rotate
without a restart: a token whose `kid` is not in the cached set makes the set be fetched again, at
most once per OIDC_JWKS_MIN_REFRESH seconds, so a stream of made-up kids cannot make this
service hammer the provider.

The person is read from claims named by configuration (OIDC_ROLE_CLAIM, OIDC_UNIT_CLAIM,
OIDC_SCOPE_CLAIM, OIDC_PROGRAMMES_CLAIM; defaults role, unit_id, supervises, programmes). A role
policyflow does not know, a unit that is in no programme, or a malformed supervised area is
refused (AccessRefused: 403 with the reason), never mapped to a default. Whether this
installation's own tokens are still accepted is AUTH_LOCAL_TOKENS (default: on only when no
provider is set).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import structlog
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.base import UserRole
from services.shared.auth import HUMAN_ROLES, ISSUER, AuthError, Principal, check_area

log = structlog.get_logger()
# Public-key algorithms only: an HMAC one would let anyone holding the public JWKS sign.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
KnownUnit = Callable[[str], Awaitable[bool]]


class AccessRefused(AuthError):
    """A token that is genuine but names a role, unit or area policyflow does not know: 403."""


class OidcSettings(BaseSettings):
    """Read from the environment when a service starts (never at import)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    issuer: str | None = Field(default=None, validation_alias=AliasChoices("OIDC_ISSUER"))
    audience: str = Field(default="policyflow", validation_alias=AliasChoices("OIDC_AUDIENCE"))
    role_claim: str = Field(default="role", validation_alias=AliasChoices("OIDC_ROLE_CLAIM"))
    unit_claim: str = Field(default="unit_id", validation_alias=AliasChoices("OIDC_UNIT_CLAIM"))
    scope_claim: str = Field(default="supervises", validation_alias=AliasChoices("OIDC_SCOPE_CLAIM"))
    programmes_claim: str = Field(default="programmes", validation_alias=AliasChoices("OIDC_PROGRAMMES_CLAIM"))
    algorithms: list[str] = Field(default=["RS256", "PS256", "ES256", "EdDSA"], validation_alias="OIDC_ALGORITHMS")
    jwks_min_refresh: float = Field(default=30.0, ge=0, validation_alias=AliasChoices("OIDC_JWKS_MIN_REFRESH"))
    leeway: float = Field(default=30.0, ge=0, le=300, validation_alias=AliasChoices("OIDC_LEEWAY_SECONDS"))
    # The pages' client (confidential: authorisation code + PKCE) and the command line's (public).
    client_id: str = Field(default="policyflow", validation_alias=AliasChoices("OIDC_CLIENT_ID"))
    client_secret: str | None = Field(default=None, validation_alias=AliasChoices("OIDC_CLIENT_SECRET"))
    cli_client_id: str = Field(default="policyflow-cli", validation_alias=AliasChoices("OIDC_CLI_CLIENT_ID"))
    scopes: str = Field(default="openid profile offline_access", validation_alias=AliasChoices("OIDC_SCOPES"))
    # Where the provider sends people back to the pages (the public address of the progress service).
    public_url: str | None = Field(default=None, validation_alias=AliasChoices("POLICYFLOW_PUBLIC_URL"))
    local_tokens: bool | None = Field(default=None, validation_alias=AliasChoices("AUTH_LOCAL_TOKENS"))

    def accepts_local_tokens(self) -> bool:
        return self.local_tokens if self.local_tokens is not None else not self.issuer


class Provider:
    """The provider's discovery document and key set, fetched on first use and kept."""

    def __init__(self, settings: OidcSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        assert settings.issuer
        self.settings, self.transport = settings, transport
        self.issuer = settings.issuer.rstrip("/")
        refused = [a for a in settings.algorithms if a not in ALLOWED_ALGORITHMS]
        if refused:
            raise ValueError(
                f"OIDC_ALGORITHMS: {', '.join(refused)} not allowed (only {', '.join(ALLOWED_ALGORITHMS)})"
            )
        self._meta: dict[str, Any] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            meta = await self._get_json(url)
            if str(meta.get("issuer", "")).rstrip("/") != self.issuer:
                raise AuthError(f"the provider at {url} names another issuer ({meta.get('issuer')})")
            self._meta = meta
        return self._meta

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(
                timeout=10.0, transport=self.transport
            ) as http:  # rare: discovery once, keys on rotation
                resp = await http.get(url)
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("oidc.fetch_failed", url=url, error=repr(exc)[:200])
            raise AuthError(
                f"统一身份认证服务暂时无法访问，请稍后再试 (the provider could not be reached: {url})"
            ) from exc
        if not isinstance(body, dict):
            raise AuthError(f"the provider answered {url} with no JSON object")
        return body

    async def cli_info(self) -> dict[str, str]:
        """What `policyflow login` needs to sign in through the provider (services/cli/oidc_login.py)."""
        meta = await self.metadata()
        return {
            "issuer": self.issuer,
            "client_id": self.settings.cli_client_id,
            "authorization_endpoint": str(meta["authorization_endpoint"]),
            "token_endpoint": str(meta["token_endpoint"]),
            "scope": self.settings.scopes,
        }

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The signing key `kid`; the key set is fetched again for a kid not seen yet (rate-limited)."""
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self.settings.jwks_min_refresh:
                self._fetched_at = time.monotonic()
                jwks = await self._get_json(str((await self.metadata())["jwks_uri"]))
                keys = jwt.PyJWKSet.from_dict(jwks).keys
                self._keys = {str(k.key_id): k for k in keys}
                log.info("oidc.jwks_fetched", kids=sorted(self._keys))
        if kid not in self._keys:
            raise AuthError(f"invalid token: signed with a key the provider does not publish (kid {kid})")
        return self._keys[kid]

    async def claims(self, token: str, audience: str | None = None, nonce: str | None = None) -> dict[str, Any]:
        """The verified claims of a JWT signed by the provider (an access token, or with
        `audience` = the client id and `nonce`, an ID token)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("invalid token: it is not a token policyflow can read (cut short, or mistyped?)") from exc
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise AuthError(f"invalid token: algorithm {alg!r} is not accepted")
        key = await self.key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=self.settings.algorithms,
                audience=audience or self.settings.audience,
                issuer=self.issuer,
                leeway=self.settings.leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(f"the token is for another audience, not {audience or self.settings.audience}") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(f"the token is from another issuer, not {self.issuer}") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError("invalid token: its signature does not match the provider's key") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"invalid token: it does not say its {exc.claim}") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        if nonce is not None and claims.get("nonce") != nonce:
            raise AuthError("the sign-in answer does not belong to this sign-in (nonce)")
        return claims

    async def verify(self, token: str, known_unit: KnownUnit | None = None) -> Principal:
        return await self.principal(await self.claims(token), known_unit)

    async def principal(self, claims: dict[str, Any], known_unit: KnownUnit | None) -> Principal:
        s = self.settings
        raw_role = claims.get(s.role_claim)
        roles = {r.value: r for r in HUMAN_ROLES}
        if not isinstance(raw_role, str) or raw_role not in roles:
            raise AccessRefused(
                f"令牌中的角色 {raw_role!r} 不是本系统的角色 (claim {s.role_claim} names no policyflow role: "
                f"{', '.join(roles)})"
            )
        role, unit = roles[raw_role], claims.get(s.unit_claim)
        if unit is not None and not isinstance(unit, str):
            raise AccessRefused(f"claim {s.unit_claim} is not a unit id")
        if role == UserRole.DEPARTMENT and not unit:
            raise AccessRefused(f"单位账号的令牌没有单位 (a department token needs the claim {s.unit_claim})")
        if unit and known_unit is not None and not await known_unit(unit):
            raise AccessRefused(f"令牌中的单位 {unit} 不在任何方案的单位名录中 (unit {unit} is not a known unit)")
        area = {}
        for name in (s.scope_claim, s.programmes_claim):
            value = claims.get(name) or []
            value = value.split() if isinstance(value, str) else value  # some providers join lists with spaces
            if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
                raise AccessRefused(f"claim {name} is not a list of names")
            area[name] = tuple(dict.fromkeys(value))
        supervises, programmes = area[s.scope_claim], area[s.programmes_claim]
        try:
            check_area(role, supervises, programmes)
        except AuthError as exc:
            raise AccessRefused(f"claim {s.scope_claim}: {exc}") from exc
        return Principal(
            sub=str(claims["sub"]), role=role, unit_id=unit or None, supervises=supervises, programmes=programmes
        )


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def known_units(engine: AsyncEngine, column: ColumnElement[str]) -> KnownUnit:
    """Whether a unit id is in the service's own records of units (`column`); a unit once found is
    remembered, a unit not found is looked up again next time (it may arrive with a programme)."""
    seen: set[str] = set()

    async def known(unit_id: str) -> bool:
        if unit_id in seen:
            return True
        async with engine.connect() as conn:
            if (await conn.execute(select(column).where(column == unit_id).limit(1))).first() is None:
                return False
        seen.add(unit_id)
        return True

    return known


def install(state: Any) -> None:
    """At a service's start: `state.oidc` (None without OIDC_ISSUER) and `state.local_tokens`."""
    settings = OidcSettings()
    state.oidc = Provider(settings) if settings.issuer else None
    state.local_tokens = settings.accepts_local_tokens()


def issued_here(token: str) -> bool:
    """Whether a token names this installation's own issuer (unverified: only to pick the check)."""
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("iss") == ISSUER
    except jwt.PyJWTError:
        return True  # unreadable: the local check says why
