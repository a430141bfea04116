"""`policyflow login` with a single sign-on provider: RFC 8252 (OAuth for native apps).

A one-shot HTTP server on 127.0.0.1 and a free port receives the provider's redirect; the
authorisation code is bound to this run by PKCE (S256) and `state`. The browser opens the
provider's sign-in page (the address is also printed, for a machine without a browser). The
access token and the refresh token are kept in the config file; when the access token has
expired, `refreshed` gets a new one with the refresh token, without the browser.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import typer

from services.cli.common import t
from services.cli.errors import ApiError
from services.shared.oidc import pkce_pair

WAIT_SECONDS = 300.0
DONE_PAGE = "登录成功，可以关闭此页面，回到命令行。 Signed in: you can close this page.".encode()


class _Redirect(BaseHTTPRequestHandler):
    answer: dict[str, str] = {}
    arrived = threading.Event()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/callback":
            self.send_error(404)
            return
        type(self).answer = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(DONE_PAGE)
        type(self).arrived.set()

    def log_message(self, *args: Any) -> None:  # quiet: the command prints its own lines
        return


def _tokens(http: httpx.Client, endpoint: str, form: dict[str, str]) -> dict[str, Any]:
    try:
        resp = http.post(endpoint, data=form)
    except httpx.HTTPError as exc:
        raise ApiError(0, f"cannot reach the sign-on provider at {endpoint}: {exc}") from exc
    if resp.status_code != 200:
        raise ApiError(resp.status_code, f"the sign-on provider refused: {resp.text[:300]}")
    body: dict[str, Any] = resp.json()
    return body


def _answer(body: dict[str, Any], provider: dict[str, str]) -> dict[str, Any]:
    token = str(body["access_token"])
    claims = jwt.decode(token, options={"verify_signature": False})  # shown to the person only
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(body.get("expires_in", 300)))
    return {
        "token": token,
        "refresh_token": body.get("refresh_token"),
        "token_endpoint": provider["token_endpoint"],
        "client_id": provider["client_id"],
        "expires_at": expires.isoformat(),
        "role": claims.get("role"),
        "unit_id": claims.get("unit_id"),
        "supervises": claims.get("supervises") or [],
    }


def browser_login(http: httpx.Client, provider: dict[str, str]) -> dict[str, Any]:
    """Sign in through the provider in the browser; the tokens and who they name."""
    handler: type[_Redirect] = type("Redirect", (_Redirect,), {"answer": {}, "arrived": threading.Event()})
    server = HTTPServer(("127.0.0.1", 0), handler)
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    query = {
        "response_type": "code", "client_id": provider["client_id"], "redirect_uri": redirect_uri,
        "scope": provider["scope"], "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
        "prompt": "consent",
    }  # fmt: skip
    url = f"{provider['authorization_endpoint']}?{urlencode(query)}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        typer.echo(
            t(
                f"请在浏览器中登录；若浏览器没有自动打开，请访问：\n{url}",
                f"sign in in the browser; if none opened, visit:\n{url}",
            ),
            err=True,
        )
        webbrowser.open(url)
        deadline = time.monotonic() + WAIT_SECONDS
        while not handler.arrived.wait(0.2):
            if time.monotonic() > deadline:
                raise ApiError(0, "no answer from the browser sign-in within 5 minutes; run `policyflow login` again")
    finally:
        server.shutdown()
        server.server_close()
    got: dict[str, str] = handler.answer
    if got.get("state") != state:
        raise ApiError(0, "the sign-in answer does not belong to this sign-in (state); run `policyflow login` again")
    if "error" in got:
        raise ApiError(0, f"the sign-on provider refused: {got['error']} {got.get('error_description', '')}".strip())
    form = {
        "grant_type": "authorization_code", "code": got.get("code", ""), "redirect_uri": redirect_uri,
        "client_id": provider["client_id"], "code_verifier": verifier,
    }  # fmt: skip
    return _answer(_tokens(http, provider["token_endpoint"], form), provider)


def refreshed(http: httpx.Client, saved: dict[str, Any]) -> dict[str, Any]:
    """A new access token for the saved refresh token (the provider may rotate the refresh token)."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": str(saved["refresh_token"]),
        "client_id": saved["client_id"],
    }
    body = _tokens(http, str(saved["token_endpoint"]), form)
    body.setdefault("refresh_token", saved["refresh_token"])
    return _answer(body, {"token_endpoint": str(saved["token_endpoint"]), "client_id": str(saved["client_id"])})
