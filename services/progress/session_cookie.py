"""The pages' sign-in cookie: the token, HttpOnly and SameSite=strict, under one page area's path,
living as long as the token does. Used by the dashboard's and the workbench's sign-in forms."""

from __future__ import annotations

import time

import jwt
from fastapi.responses import RedirectResponse, Response

from services.shared.web import TOKEN_COOKIE


def safe_next(value: str | None, area: str) -> str:
    """Only back into the same page area: never an open redirect."""
    if value and value.startswith(area) and not value.startswith("//") and "\\" not in value:
        return value
    return area


def expiry(token: str) -> float | None:
    """The token's exp (its signature was verified already)."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None


def signed_in(token: str, target: str, area: str, secure: bool) -> Response:
    """The redirect after a sign-in, carrying the cookie."""
    resp = RedirectResponse(target, status_code=303)
    exp = expiry(token)
    max_age = max(int(exp - time.time()), 0) if exp else None
    resp.set_cookie(TOKEN_COOKIE, token, max_age=max_age, path=area, httponly=True, samesite="strict", secure=secure)
    return resp


def signed_out(login_page: str, area: str) -> Response:
    resp = RedirectResponse(login_page, status_code=303)
    resp.delete_cookie(TOKEN_COOKIE, path=area)
    return resp
