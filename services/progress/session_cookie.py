"""Who is behind a page request: a bearer token (scripts) or the session cookie (people).

The session cookie `pf_session` holds a random id (services/progress/accounts.py keeps its hash),
HttpOnly, SameSite=Lax, under `/` so that the workbench and the dashboard share one sign-in. A
form posted with the cookie must carry the session's CSRF token (`check_csrf`); a request with a
bearer token needs none (a browser never adds that header on its own). The pages call the other
services with the caller's token: the provider's access token of a single sign-on session, else a
short-lived token signed here for the session's person (`forward_token`).
"""

from __future__ import annotations

import datetime as dt
import secrets

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from services.progress import accounts
from services.shared import access_log
from services.shared.auth import AuthError, Principal, issue_token
from services.shared.web import token_from, verify_bearer

SESSION_COOKIE = "pf_session"
# The sign-in form's own CSRF token (double submit), before there is a session.
SIGNIN_COOKIE = "pf_signin"
FORWARD_TTL = dt.timedelta(minutes=10)
CSRF_REFUSED = (
    "表单已过期或不是从本系统页面提交的，未做任何更改；请刷新页面后重新提交 "
    "(the form's security token is missing or wrong; nothing was changed: reload the page and send it again)"
)


def safe_next(value: str | None, area: str) -> str:
    """Only back into the same page area: never an open redirect."""
    if value and value.startswith(area) and not value.startswith("//") and "\\" not in value:
        return value
    return area


def secure(request: Request) -> bool:
    return bool(request.app.state.settings.secure_cookie)


async def identify(request: Request) -> Principal | None:
    """The caller, None when nothing identifies them; AuthError for a token that cannot be trusted.
    Leaves on request.state what the page needs later: the CSRF token and the session id."""
    request.state.csrf = ""
    token = token_from(request)
    if token:
        who = await verify_bearer(request, token)
        request.state.bearer = token
        return who
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    session = await accounts.find_session(request.app.state.engine, session_id)
    if session is None:
        raise AuthError("登录已过期，请重新登录 (the session has ended)")
    request.state.csrf, request.state.session_id = session.csrf, session_id
    if session.access_token:
        request.state.bearer = session.access_token
    request.state.session = session
    access_log.note(sub=session.who.sub, role=session.who.role.value, unit_id=session.who.unit_id)
    return session.who


def forward_token(request: Request) -> str | None:
    """The token to send to another service on the caller's behalf (see the module's note)."""
    token: str | None = getattr(request.state, "bearer", None)
    if token:
        return token
    session: accounts.Session | None = getattr(request.state, "session", None)
    if session is None:
        return token_from(request)
    who = session.who
    token = issue_token(
        request.app.state.settings.keys(), who.role, who.unit_id, who.sub, FORWARD_TTL,
        supervises=who.supervises, programmes=who.programmes,
    )  # fmt: skip
    request.state.bearer = token
    return token


def check_csrf(request: Request, submitted: str | None) -> bool:
    """A form of a session carries its CSRF token; a bearer request needs none."""
    session_csrf: str = getattr(request.state, "csrf", "")
    if not session_csrf:
        return getattr(request.state, "bearer", None) is not None and not hasattr(request.state, "session")
    return bool(submitted) and secrets.compare_digest(session_csrf, submitted or "")


def signin_csrf(request: Request) -> str:
    """The sign-in form's token: the cookie's, or a new one `with_signin_cookie` will set."""
    token = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(32)
    request.state.csrf = token
    return token


def with_signin_cookie(request: Request, resp: Response) -> Response:
    resp.set_cookie(
        SIGNIN_COOKIE, request.state.csrf, max_age=3600, path="/", httponly=True, samesite="lax", secure=secure(request)
    )
    return resp


def signed_in(request: Request, session_id: str, expires_at: dt.datetime, target: str) -> Response:
    """The redirect after a sign-in, carrying the session cookie."""
    resp = RedirectResponse(target, status_code=303)
    max_age = max(int((expires_at - dt.datetime.now(dt.UTC)).total_seconds()), 0)
    resp.set_cookie(
        SESSION_COOKIE, session_id, max_age=max_age, path="/", httponly=True, samesite="lax", secure=secure(request)
    )
    resp.delete_cookie(SIGNIN_COOKIE, path="/")
    return resp


def signed_out(login_page: str) -> Response:
    resp = RedirectResponse(login_page, status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
