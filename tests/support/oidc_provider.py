"""A real OpenID provider for the tests: tests/oidc/provider.mjs (the `oidc-provider` package, installed
by `make setup` with `npm ci`) run by the machine's Node.js on a loopback port.

The tests make its RSA signing keys, so that they can also sign tokens the provider would never
issue (expired, another issuer, another audience) with a key its JWKS publishes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from deploy.local.servers import free_port

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc"


def why_not() -> str | None:
    """What is missing to run the provider here (None: nothing)."""
    if shutil.which("node") is None:
        return "no Node.js (node) on this machine"
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        return "oidc-provider is not installed: `make setup` runs `npm ci` in tests/oidc"
    return None


def new_key(kid: str) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@dataclass
class OidcProvider:
    issuer: str
    keys_file: Path
    keys: list[dict[str, Any]] = field(default_factory=list)

    def sign(self, claims: dict[str, Any], key: dict[str, Any] | None = None) -> str:
        """A token signed with one of the provider's own keys (the first, the one it signs with)."""
        jwk = key or self.keys[0]
        private = RSAAlgorithm.from_jwk(json.dumps(jwk))
        return jwt.encode(claims, private, algorithm="RS256", headers={"kid": jwk["kid"], "typ": "at+jwt"})  # type: ignore[arg-type]

    def claims(self, account: str, **changes: Any) -> dict[str, Any]:
        """What the provider puts in an access token for `account` (ROLE[:UNIT[:SCOPE,...]])."""
        role, _, rest = account.partition(":")
        unit, _, scope = rest.partition(":")  # the scope keeps its own colons (unit:yuzhong)
        now = int(time.time())
        base = {"sub": account, "role": role, "iss": self.issuer, "aud": "policyflow", "iat": now, "exp": now + 600}
        if unit:
            base["unit_id"] = unit
        if scope:
            base["supervises"] = scope.split(",")
        return {**base, **changes}

    def token(self, account: str) -> str:
        """An access token made by the provider itself for `account`."""
        r = httpx.post(f"{self.issuer}/__token", params={"account": account}, timeout=10)
        r.raise_for_status()
        return r.text

    def rotate(self, kid: str) -> None:
        """A new signing key first, the old ones still published; the provider re-reads them."""
        self.keys.insert(0, new_key(kid))
        self.keys_file.write_text(json.dumps({"keys": self.keys}))
        httpx.post(f"{self.issuer}/__rotate", timeout=10).raise_for_status()


@contextmanager
def running_provider(tmp: Path) -> Iterator[OidcProvider]:
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}", tmp / "oidc-keys.json", [new_key("k1")])
    provider.keys_file.write_text(json.dumps({"keys": provider.keys}))
    log = (tmp / "oidc-provider.log").open("w")
    proc = subprocess.Popen(
        ["node", str(PROVIDER_DIR / "provider.mjs"), str(port), str(provider.keys_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=PROVIDER_DIR,
    )
    try:
        for _ in range(300):  # until it answers its discovery document
            if proc.poll() is not None:
                raise RuntimeError(f"the OpenID provider exited: {(tmp / 'oidc-provider.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("the OpenID provider did not answer within 15 s")
        yield provider
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
