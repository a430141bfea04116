"""Sign-in with a user name and password, sign-out, and a bearer token for the command line.

  GET/POST /workbench/login, /dashboard/login   the form (one session serves both areas)
  POST     /signout                             ends the session here, on the server
  POST     /v1/auth/token                       name + password -> a bearer token (`policyflow login`)

Attempts are limited per client address (`signin_per_minute`, 429 past it) and per name (a lock-out
after `signin_max_failures` failures in a row, services/progress/accounts.py). With a single sign-on
provider set (OIDC_ISSUER) passwords are not asked for: the forms send people to the provider.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.progress import accounts, oidc_pages
from services.progress import session_cookie as cookie
from services.progress.templating import templates
from services.shared.auth import AuthError, issue_token, signing_key_available

log = structlog.get_logger()
router = APIRouter()
AREAS = {"/workbench": "workbench/login.html", "/dashboard": "login.html"}
TOO_MANY = "尝试次数过多，请一分钟后再试 (too many sign-in attempts from this address; try again in a minute)"


class RecentAttempts:
    """Sign-in attempts per client address in the last minute (this process's count)."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}

    def allow(self, address: str, per_minute: int) -> bool:
        now = time.monotonic()
        seen = self._seen.setdefault(address, deque())
        while seen and seen[0] <= now - 60:
            seen.popleft()
        if len(seen) >= per_minute:
            return False
        seen.append(now)
        if len(self._seen) > 10_000:  # forget quiet addresses
            self._seen = {a: d for a, d in self._seen.items() if d and d[-1] > now - 60}
        return True


def _allowed(request: Request) -> bool:
    state = request.app.state
    if getattr(state, "signin_attempts", None) is None:
        state.signin_attempts = RecentAttempts()
    address = request.client.host if request.client else "-"
    return bool(state.signin_attempts.allow(address, state.settings.signin_per_minute))


def _policy(request: Request) -> accounts.SignInPolicy:
    s = request.app.state.settings
    return accounts.SignInPolicy(s.signin_max_failures, s.signin_lock_minutes)


def provider_set(request: Request) -> bool:
    return getattr(request.app.state, "oidc", None) is not None


def _form(request: Request, area: str, status: int, error: str | None, next: str) -> Response:
    cookie.signin_csrf(request)
    context: dict[str, Any] = {"error": error, "next": next, "user": None, "notes": [], "names": {}, "page": ""}
    context |= {"csrf": request.state.csrf, "provider": provider_set(request), "area": area}
    if provider_set(request):
        context["provider_url"] = f"/auth/oidc/start?{urlencode({'next': next})}"
    resp = templates.TemplateResponse(request, AREAS[area], context, status_code=status)
    return cookie.with_signin_cookie(request, resp)


def _login_form(area: str) -> Callable[..., Any]:
    async def login_form(request: Request, next: str | None = None, expired: str | None = None) -> Response:
        note = "登录已过期，请重新登录。" if expired else None
        return _form(request, area, 200, note, cookie.safe_next(next, area))

    return login_form


def _login(area: str) -> Callable[..., Any]:
    async def login(
        request: Request,
        username: str = Form(default="", max_length=100),
        password: str = Form(default="", max_length=1000),
        csrf: str = Form(default="", max_length=200),
        next: str = Form(default=area),
    ) -> Response:
        target = cookie.safe_next(next, area)
        expected = request.cookies.get(cookie.SIGNIN_COOKIE, "")
        if not expected or not csrf or expected != csrf:
            return _form(request, area, 403, cookie.CSRF_REFUSED, target)
        if provider_set(request):
            return _form(request, area, 400, "本系统使用统一身份认证登录，请点击下方按钮。", target)
        if not _allowed(request):
            return _form(request, area, 429, TOO_MANY, target)
        if not username.strip() or not password:
            return _form(request, area, 401, "请输入用户名和密码。", target)
        try:
            who = await accounts.check_password(request.app.state.engine, username.strip(), password, _policy(request))
        except accounts.AccountError as exc:
            log.info("signin.refused", area=area, reason=str(exc)[:60])
            return _form(request, area, 401, str(exc), target)
        hours = request.app.state.settings.session_hours
        session_id, session = await accounts.open_session(request.app.state.engine, who, hours)
        log.info("signin.password", sub=who.sub, role=who.role.value, area=area)
        return cookie.signed_in(request, session_id, session.expires_at, target)

    return login


for _area in AREAS:
    router.add_api_route(f"{_area}/login", _login_form(_area), methods=["GET"], include_in_schema=False)
    router.add_api_route(f"{_area}/login", _login(_area), methods=["POST"], include_in_schema=False)


@router.post("/signout", include_in_schema=False)
async def signout(
    request: Request, csrf: str = Form(default="", max_length=200), area: str = Form(default="")
) -> Response:
    """Ends the session on the server (its row is deleted), then clears the cookie; a session opened
    through the provider also goes to the provider's sign-out (oidc_pages.logout_url)."""
    login_page = f"{area if area in AREAS else '/workbench'}/login"
    session_id = request.cookies.get(cookie.SESSION_COOKIE)
    then = login_page
    if session_id:
        session = await accounts.find_session(request.app.state.engine, session_id)
        if session is not None and not (csrf and csrf == session.csrf):
            return Response(cookie.CSRF_REFUSED, status_code=403, media_type="text/plain; charset=utf-8")
        await accounts.end_session(request.app.state.engine, session_id)
        if session is not None:
            log.info("signout", sub=session.who.sub)
            if session.access_token:
                then = await oidc_pages.logout_url(request, login_page) or login_page
    return cookie.signed_out(then)


class ProviderInfo(BaseModel):
    issuer: str
    client_id: str = Field(description="the client id the command line signs in as (a public client, PKCE)")
    authorization_endpoint: str
    token_endpoint: str
    scope: str


class AuthConfig(BaseModel):
    provider: ProviderInfo | None = Field(description="the single sign-on provider; null: user name and password")


@router.get("/v1/auth/config", response_model=AuthConfig, tags=["auth"], summary="How people sign in")
async def auth_config(request: Request) -> AuthConfig:
    """Read by `policyflow login` before it signs in; needs no token."""
    oidc = getattr(request.app.state, "oidc", None)
    if oidc is None:
        return AuthConfig(provider=None)
    return AuthConfig(provider=ProviderInfo.model_validate(await oidc.cli_info()))


class PasswordSignIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="user name")
    password: str = Field(min_length=1, max_length=1000)


class IssuedToken(BaseModel):
    token: str
    expires_at: dt.datetime
    role: str
    unit_id: str | None
    supervises: list[str]
    programmes: list[str]


@router.post("/v1/auth/token", response_model=IssuedToken, tags=["auth"], summary="A bearer token for a password")
async def token_for_password(request: Request, body: PasswordSignIn) -> IssuedToken:
    """`policyflow login` without a provider: the same checks and lock-out as the sign-in form."""
    settings = request.app.state.settings
    if provider_set(request):
        raise HTTPException(400, "本系统使用统一身份认证：请用 `policyflow login` 在浏览器中登录 (use the provider)")
    if not _allowed(request):
        raise HTTPException(429, TOO_MANY, headers={"Retry-After": "60"})
    keys = settings.keys()
    if not await asyncio.to_thread(signing_key_available, keys):
        raise HTTPException(503, "本服务没有签发令牌的私钥（POLICYFLOW_KEY_DIR）(no signing key here)")
    try:
        who = await accounts.check_password(
            request.app.state.engine, body.name.strip(), body.password, _policy(request)
        )
    except accounts.AccountError as exc:
        raise HTTPException(401, str(exc)) from exc
    ttl = dt.timedelta(hours=settings.login_token_hours)
    try:
        token = issue_token(
            keys, who.role, who.unit_id, who.sub, ttl, supervises=who.supervises, programmes=who.programmes
        )
    except AuthError as exc:
        raise HTTPException(409, str(exc)) from exc
    log.info("signin.token", sub=who.sub, role=who.role.value)
    expires = dt.datetime.now(dt.UTC) + ttl
    return IssuedToken(
        token=token,
        expires_at=expires,
        role=who.role.value,
        unit_id=who.unit_id,
        supervises=list(who.supervises),
        programmes=list(who.programmes),
    )
