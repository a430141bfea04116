"""The command-line client's HTTP side: where the services are, which token to send, what went wrong.

Service URLs and the token come from the environment (POLICYFLOW_ASSIGNMENT_URL,
POLICYFLOW_PROGRESS_URL, POLICYFLOW_AUDIT_URL, POLICYFLOW_TOKEN), else from the config file
(POLICYFLOW_CONFIG, else $XDG_CONFIG_HOME/policyflow/config.toml, else
~/.config/policyflow/config.toml), else the local stack's defaults; `--token` beats them all.
`policyflow token issue --save` keeps a token in the config file (readable by its owner only).
Writes carry an Idempotency-Key, so a retry after a timeout is safe.
"""

from __future__ import annotations

import os
import time
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from services.cli.errors import ApiError
from services.cli.oidc_login import refreshed

DEFAULT_URLS = {
    "assignment": "http://127.0.0.1:8101",
    "progress": "http://127.0.0.1:8102",
    "audit": "http://127.0.0.1:8103",
}
# Tests swap in an httpx.MockTransport here.
TRANSPORT: httpx.BaseTransport | None = None
RETRIES = 3


# Said when there is no token at all, before anything is sent.
NO_TOKEN = (
    "no token: sign in once with `policyflow login`; or, on the host with the signing key, run "
    "`policyflow token issue --role ROLE [--unit UNIT] --save` (roles: department with --unit, supervisor, "
    "verifier, auditor, admin); or set POLICYFLOW_TOKEN, or give --token"
)


def config_path() -> Path:
    if os.environ.get("POLICYFLOW_CONFIG"):
        return Path(os.environ["POLICYFLOW_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "policyflow" / "config.toml"


def _toml_line(key: str, value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{key} = {value}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'{key} = "{text}"'


def save_token(token: str, path: Path | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Keep `token` in the config file (its other settings kept), readable by its owner only.
    `extra` (a provider's refresh token) is kept beside it; a key whose value is None is removed."""
    path = path or config_path()
    settings = {k: v for k, v in read_config_file(path).items() if isinstance(v, str | int | float)}
    settings["token"] = token
    for key, value in (extra or {}).items():
        settings.pop(key, None)
        if value is not None:
            settings[key] = value
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path.with_name(path.name + ".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(_toml_line(k, v) + "\n" for k, v in settings.items()))
        os.chmod(path.with_name(path.name + ".new"), 0o600)  # an older file's mode does not carry over
        os.replace(path.with_name(path.name + ".new"), path)
    except OSError as exc:
        raise ApiError(0, f"cannot save the token in {path}: {exc.strerror}") from exc
    return path


def read_config_file(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ApiError(0, f"cannot read config file {path}: {exc}") from exc


@dataclass(frozen=True)
class Config:
    urls: dict[str, str]
    token: str | None
    token_source: str = ""  # where the token came from, to say which one a service refused

    @classmethod
    def load(cls, token: str | None = None) -> Config:
        file = read_config_file()
        urls = {
            name: (os.environ.get(f"POLICYFLOW_{name.upper()}_URL") or file.get(f"{name}_url") or default).rstrip("/")
            for name, default in DEFAULT_URLS.items()
        }
        for given, source in (
            (token, "the token given with --token"),
            (os.environ.get("POLICYFLOW_TOKEN"), "the token in POLICYFLOW_TOKEN"),
        ):
            if given:
                return cls(urls=urls, token=given, token_source=source)
        saved = file.get("token") or None
        if saved and file.get("refresh_token") and _expired(saved):
            saved = _refresh(file)
        return cls(urls=urls, token=saved, token_source=f"the token saved in {config_path()}" if saved else "")

    def claims(self) -> dict[str, Any]:
        """The token's claims, unverified: only to pick defaults such as the caller's unit."""
        if not self.token:
            return {}
        try:
            return dict(jwt.decode(self.token, options={"verify_signature": False}))
        except jwt.PyJWTError as exc:
            raise ApiError(
                0,
                f"{self.token_source or 'the token'} is not a token ({exc}): issue one with "
                "`policyflow token issue --role ROLE [--unit UNIT] --save`, or set POLICYFLOW_TOKEN to one",
            ) from exc


def _expired(token: str) -> bool:
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return False
    return isinstance(exp, int | float) and exp < time.time() + 30


def _refresh(file: dict[str, Any]) -> str:
    """The saved provider token has expired: a new one with the saved refresh token, kept in the file."""
    with httpx.Client(timeout=30.0, transport=TRANSPORT) as http:
        try:
            answer = refreshed(http, file)
        except ApiError as exc:
            raise ApiError(exc.status, f"the saved sign-in has ended ({exc.detail}); run `policyflow login`") from exc
    save_token(str(answer["token"]), extra={"refresh_token": answer.get("refresh_token")})
    return str(answer["token"])


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else str(body)[:500]


class Client:
    def __init__(self, config: Config, timeout: float = 30.0) -> None:
        self.config = config
        self.http = httpx.Client(timeout=timeout, transport=TRANSPORT)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def request(
        self,
        service: str,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        base = self.config.urls[service]
        if not self.config.token:
            raise ApiError(0, NO_TOKEN)
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        if method != "GET":
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(RETRIES):
            try:
                resp = self.http.request(method, f"{base}{path}", json=json, params=clean, headers=headers)
            except httpx.TimeoutException as exc:
                if attempt + 1 < RETRIES:  # same Idempotency-Key: the service answers once
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise ApiError(0, f"{service} service at {base} did not answer in time ({exc})") from exc
            except httpx.HTTPError as exc:
                raise ApiError(0, f"cannot reach the {service} service at {base}: {exc}") from exc
            if resp.status_code in (502, 503, 504) and attempt + 1 < RETRIES:
                time.sleep(0.5 * (attempt + 1))
                continue
            if resp.status_code == 401:
                raise ApiError(401, f"{_detail(resp)} (refused: {self.config.token_source or 'the token given'})")
            if resp.status_code >= 400:
                raise ApiError(resp.status_code, _detail(resp))
            return resp.json() if resp.content else None
        raise AssertionError("unreachable")
