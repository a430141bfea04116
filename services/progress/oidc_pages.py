"""Single sign-on for the pages: the authorisation code flow with PKCE (OIDC_ISSUER set).

  GET /auth/oidc/start?next=PAGE   to the provider's sign-in, with state, nonce and an S256 challenge
  GET /auth/oidc/callback          the code exchanged for tokens; the ID token checked (signature,
                                   issuer, audience = OIDC_CLIENT_ID, nonce); the person read from the
                                   access token as the API reads it; a session opened

What the callback must match (state, nonce, code verifier, the page to go back to) waits in a
ten-minute HttpOnly cookie under /auth/oidc, so any worker process can finish the sign-in. The
session keeps the provider's access token, which the pages send to the other services, and ends
when that token does (signing in again is one redirect while the provider's own session lasts).

Signing out of such a session also ends the provider's session when the provider offers
RP-initiated logout (`end_session_endpoint`): the browser goes there, then back to the sign-in
page, so the next person at a shared desk cannot sign in again as the last one with a click.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.progress import accounts
from services.progress import session_cookie as cookie
from services.progress.workbench_signin import render
from services.shared.auth import AuthError
from services.shared.oidc import AccessRefused, Provider, pkce_pair

log = structlog.get_logger()
router = APIRouter(include_in_schema=False)
FLOW_COOKIE, FLOW_PATH = "pf_oidc", "/auth/oidc"


def _provider(request: Request) -> Provider | None:
    return getattr(request.app.state, "oidc", None)


def _redirect_uri(request: Request, provider: Provider) -> str:
    base = provider.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}{FLOW_PATH}/callback"


async def logout_url(request: Request, back_to: str) -> str | None:
    """Where to send the browser to end the provider's session and come back to `back_to` (a path
    here); None without a provider, or one that has no end-session endpoint."""
    provider = _provider(request)
    if provider is None:
        return None
    try:
        endpoint = (await provider.metadata()).get("end_session_endpoint")
    except AuthError as exc:  # the provider away: our session has ended all the same
        log.warning("oidc.logout_unavailable", reason=str(exc))
        return None
    if not endpoint:
        return None
    base = (provider.settings.public_url or str(request.base_url)).rstrip("/")
    query = {"client_id": provider.settings.client_id, "post_logout_redirect_uri": f"{base}{back_to}"}
    return f"{endpoint}?{urlencode(query)}"


def _failed(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", status, title="登录失败", message=message)


@router.get(f"{FLOW_PATH}/start")
async def start(request: Request, next: str | None = None) -> Response:
    provider = _provider(request)
    if provider is None:
        return _failed(request, 404, "本系统没有配置统一身份认证，请用用户名和密码登录。")
    area = "/dashboard" if (next or "").startswith("/dashboard") else "/workbench"
    try:
        meta = await provider.metadata()
    except AuthError as exc:
        return _failed(request, 503, str(exc))
    verifier, challenge = pkce_pair()
    flow = {"state": secrets.token_urlsafe(24), "nonce": secrets.token_urlsafe(24), "verifier": verifier}
    flow["next"] = cookie.safe_next(next, area)
    s = provider.settings
    query = {
        "response_type": "code", "client_id": s.client_id, "redirect_uri": _redirect_uri(request, provider),
        "scope": s.scopes, "state": flow["state"], "nonce": flow["nonce"], "code_challenge": challenge,
        "code_challenge_method": "S256",
    }  # fmt: skip
    resp = RedirectResponse(f"{meta['authorization_endpoint']}?{urlencode(query)}", status_code=303)
    value = base64.urlsafe_b64encode(json.dumps(flow).encode()).decode()
    resp.set_cookie(
        FLOW_COOKIE, value, max_age=600, path=FLOW_PATH, httponly=True, samesite="lax", secure=cookie.secure(request)
    )
    return resp


def _flow(request: Request) -> dict[str, str] | None:
    try:
        flow = json.loads(base64.urlsafe_b64decode(request.cookies.get(FLOW_COOKIE, "").encode()))
    except (ValueError, TypeError):
        return None
    return flow if isinstance(flow, dict) and {"state", "nonce", "verifier", "next"} <= flow.keys() else None


async def _exchange(request: Request, provider: Provider, code: str, verifier: str) -> dict[str, Any]:
    s, meta = provider.settings, await provider.metadata()
    form = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": _redirect_uri(request, provider),
        "code_verifier": verifier, "client_id": s.client_id,
    }  # fmt: skip
    auth = httpx.BasicAuth(s.client_id, s.client_secret) if s.client_secret else None
    try:
        resp = await request.app.state.http.post(str(meta["token_endpoint"]), data=form, auth=auth)
    except httpx.HTTPError as exc:
        raise AuthError(f"统一身份认证服务暂时无法访问，请稍后再试 ({exc!r})") from exc
    if resp.status_code != 200:
        log.warning("oidc.code_refused", status=resp.status_code, body=resp.text[:200])
        raise AuthError(f"统一身份认证服务拒绝了这次登录 (the provider refused the code: {resp.status_code})")
    body: dict[str, Any] = resp.json()
    return body


@router.get(f"{FLOW_PATH}/callback")
async def callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    provider, flow = _provider(request), _flow(request)
    if provider is None:
        return _failed(request, 404, "本系统没有配置统一身份认证。")
    if flow is None or not state or not secrets.compare_digest(state, flow["state"]):
        return _failed(request, 400, "登录请求已过期或不属于本次登录，请重新登录。(the sign-in answer does not match)")
    if error or not code:
        return _failed(request, 401, f"统一身份认证未完成登录：{error or 'no code'}")
    try:
        tokens = await _exchange(request, provider, code, flow["verifier"])
        if "id_token" in tokens:
            await provider.claims(str(tokens["id_token"]), audience=provider.settings.client_id, nonce=flow["nonce"])
        access = str(tokens.get("access_token", ""))
        who = await provider.verify(access, getattr(request.app.state, "known_unit", None))
        exp = (await provider.claims(access))["exp"]
    except AccessRefused as exc:
        log.warning("oidc.signin_refused", reason=str(exc))
        return _failed(request, 403, f"您的统一身份认证账号不能使用本系统：{exc}")
    except AuthError as exc:
        log.warning("oidc.signin_failed", reason=str(exc))
        return _failed(request, 401, f"登录失败：{exc}")
    lasts = dt.datetime.fromtimestamp(int(exp), dt.UTC) - dt.datetime.now(dt.UTC)
    hours = min(request.app.state.settings.session_hours, max(lasts.total_seconds(), 60) / 3600)
    engine = request.app.state.engine
    session_id, session = await accounts.open_session(engine, who, hours, access)
    log.info("signin.oidc", sub=who.sub, role=who.role.value)
    resp = cookie.signed_in(request, session_id, session.expires_at, flow["next"])
    resp.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return resp
