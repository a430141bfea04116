"""The workbench's sign-in (the token form, until accounts exist) and the pages' frame.

Any role signs in: the token goes into an HttpOnly, SameSite=strict cookie valid under /workbench
only; `gate` answers a request without one with the sign-in page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from services.progress import dashboard_sources as src
from services.progress import session_cookie as cookie
from services.progress.templating import templates
from services.shared.auth import AuthError, Principal, verify_token
from services.shared.web import TOKEN_COOKIE, token_from

log = structlog.get_logger()
router = APIRouter(include_in_schema=False)
COOKIE_PATH = "/workbench"


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    for key, default in (("user", None), ("notes", []), ("names", {})):
        context.setdefault(key, default)
    return templates.TemplateResponse(request, f"workbench/{name}", context, status_code=status)


def _safe_next(value: str | None) -> str:
    return cookie.safe_next(value, COOKIE_PATH)


def gate(request: Request) -> Principal | Response:
    """Who is asking, or the sign-in page to send instead."""
    token = token_from(request)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token:
        return RedirectResponse(f"/workbench/login?{urlencode({'next': target})}", status_code=303)
    try:
        return verify_token(token, request.app.state.public_key)
    except AuthError as exc:
        resp = render(request, "login.html", 401, error=f"登录已失效，请重新登录（{exc}）", next=_safe_next(target))
        resp.delete_cookie(TOKEN_COOKIE, path=COOKIE_PATH)
        return resp


def refused(request: Request, who: Principal | None, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", status, user=who, title=title, message=message)


@router.get("/workbench/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", error=None, next=_safe_next(next))


@router.post("/workbench/login")
async def login(
    request: Request, token: str = Form(default="", max_length=8000), next: str = Form(default="/workbench")
) -> Response:
    target, token = _safe_next(next), token.strip()
    if not token:
        return render(request, "login.html", 401, error="请输入访问令牌。", next=target)
    try:
        who = verify_token(token, request.app.state.public_key)
    except AuthError as exc:
        return render(request, "login.html", 401, error=f"令牌无效：{exc}", next=target)
    resp = cookie.signed_in(token, target, COOKIE_PATH, src.dashboard_settings(request).secure_cookie)
    log.info("workbench.login", sub=who.sub, role=who.role.value)
    return resp


@router.get("/workbench/logout")
async def logout() -> Response:
    return cookie.signed_out("/workbench/login", COOKIE_PATH)
