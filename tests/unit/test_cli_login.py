"""The command line's saved single sign-on: an expired access token is renewed with the saved refresh
token before a command is sent (and the new tokens kept, mode 0600); a refresh the provider refuses
asks for `policyflow login` again."""

from __future__ import annotations

import os
import stat
import time
import tomllib
from pathlib import Path

import httpx
import jwt
import pytest

from services.cli import client
from services.cli.client import Config, save_token
from services.cli.errors import ApiError

ENDPOINT = "https://idp.example.gov.cn/token"


def access_token(exp: float) -> str:
    return jwt.encode({"sub": "u1", "role": "supervisor", "exp": int(exp)}, "k" * 32, algorithm="HS256")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("POLICYFLOW_CONFIG", str(path))
    monkeypatch.delenv("POLICYFLOW_TOKEN", raising=False)
    extra = {"refresh_token": "r1", "token_endpoint": ENDPOINT, "client_id": "policyflow-cli"}
    save_token(access_token(time.time() - 60), path, extra)
    return path


def provider(monkeypatch: pytest.MonkeyPatch, status: int, fresh: str) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(dict(httpx.QueryParams(request.content.decode())))
        if status != 200:
            return httpx.Response(status, json={"error": "invalid_grant"})
        return httpx.Response(200, json={"access_token": fresh, "refresh_token": "r2", "expires_in": 600})

    monkeypatch.setattr(client, "TRANSPORT", httpx.MockTransport(answer))
    return seen


def test_an_expired_token_is_renewed_with_the_refresh_token(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = access_token(time.time() + 600)
    seen = provider(monkeypatch, 200, fresh)
    assert Config.load().token == fresh
    assert seen == [{"grant_type": "refresh_token", "refresh_token": "r1", "client_id": "policyflow-cli"}]
    saved = tomllib.loads(config.read_text())
    assert (saved["token"], saved["refresh_token"], saved["token_endpoint"]) == (fresh, "r2", ENDPOINT)
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert Config.load().token == fresh and len(seen) == 1  # still valid: the provider is not asked


@pytest.mark.usefixtures("config")
def test_a_refused_refresh_asks_to_sign_in_again(monkeypatch: pytest.MonkeyPatch) -> None:
    provider(monkeypatch, 400, "")
    with pytest.raises(ApiError, match="the saved sign-in has ended .* run `policyflow login`"):
        Config.load()
