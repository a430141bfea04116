"""`policyflow login`: sign in once, keep the bearer token in the CLI's config file (mode 0600).

The progress service says how people sign in (`GET /v1/auth/config`). Without a single sign-on
provider the command asks for the user name and password and gets a token from
`POST /v1/auth/token`. With one, it signs in through the provider in the browser (RFC 8252:
a loopback redirect with PKCE, services/cli/oidc_login.py) and keeps the refresh token too.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import httpx
import typer

from services.cli import client
from services.cli.client import Config, save_token
from services.cli.common import AsJson, fail, lang, t
from services.cli.errors import ApiError

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _progress_url() -> str:
    return Config.load().urls["progress"]


def auth_config(http: httpx.Client, base: str) -> dict[str, object]:
    try:
        resp = http.get(f"{base}/v1/auth/config")
    except httpx.HTTPError as exc:
        raise ApiError(0, f"cannot reach the progress service at {base}: {exc}") from exc
    if resp.status_code != 200:
        raise ApiError(resp.status_code, f"the progress service at {base} did not say how to sign in")
    answer: dict[str, object] = resp.json()
    return answer


def password_token(http: httpx.Client, base: str, name: str, password: str) -> dict[str, object]:
    try:
        resp = http.post(f"{base}/v1/auth/token", json={"name": name, "password": password})
    except httpx.HTTPError as exc:
        raise ApiError(0, f"cannot reach the progress service at {base}: {exc}") from exc
    if resp.status_code != 200:
        try:
            detail = str(resp.json().get("detail"))
        except ValueError:
            detail = resp.text[:300]
        raise ApiError(resp.status_code, detail)
    answer: dict[str, object] = resp.json()
    return answer


def login(
    user: str | None = typer.Option(None, "--user", help="user name (asked when not given)"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from standard input"),
    as_json: AsJson = False,
) -> None:
    """Sign in and keep the token for the commands after it."""
    base = _progress_url()
    try:
        with httpx.Client(timeout=30.0, transport=client.TRANSPORT) as http:
            provider = auth_config(http, base).get("provider")
            if isinstance(provider, dict):
                from services.cli.oidc_login import browser_login

                answer = browser_login(http, provider)
            else:
                name = user or typer.prompt(t("用户名", "user name"))
                if password_stdin:
                    password = typer.get_text_stream("stdin").readline().rstrip("\n")
                else:
                    password = typer.prompt(t("密码", "password"), hide_input=True)
                answer = password_token(http, base, name, password)
        kept = {k: answer.get(k) for k in ("refresh_token", "token_endpoint", "client_id")}
        saved = save_token(str(answer["token"]), extra=kept)
    except ApiError as exc:
        raise fail(exc, as_json) from exc
    if as_json:
        shown = {k: v for k, v in answer.items() if k not in ("token", "refresh_token", "token_endpoint")}
        typer.echo(json.dumps({**shown, "saved_to": str(saved)}, ensure_ascii=False, default=str))
        return
    who = f"{answer.get('role')} {answer.get('unit_id') or ''}".strip()
    until = dt.datetime.fromisoformat(str(answer["expires_at"])).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    said = t(
        f"已登录（{who}），令牌已保存到 {saved}，有效至 {until}（北京时间）",
        f"signed in ({who}); token saved in {saved}",
    )
    typer.echo(said if lang() == "zh" else f"{said}, valid until {until} (Beijing time)")
    if os.environ.get("POLICYFLOW_TOKEN"):
        typer.echo(t("注意：POLICYFLOW_TOKEN 优先于保存的令牌", "note: POLICYFLOW_TOKEN is used before it"), err=True)
