"""FastAPI plumbing every service uses: bearer auth dependency, error shapes, body limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import Response

from contracts.base import UserRole
from services.shared.auth import AuthError, Principal, verify_token

log = structlog.get_logger()
TOKEN_COOKIE = "pf_token"
MAX_BODY_BYTES = 1024 * 1024


def token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(TOKEN_COOKIE)


def principal(request: Request) -> Principal:
    """The caller, or 401. The public key is on app.state, loaded at start-up."""
    token = token_from(request)
    if not token:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        return verify_token(token, request.app.state.public_key)
    except AuthError as exc:
        log.warning("auth.rejected", reason=str(exc), path=request.url.path)
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


def require_role(p: Principal, *roles: UserRole) -> Principal:
    if p.role not in roles:
        log.warning("auth.forbidden", sub=p.sub, role=p.role, needed=[r.value for r in roles])
        raise HTTPException(403, f"role {p.role.value} may not do this (needs {' or '.join(r.value for r in roles)})")
    return p


def require_unit(p: Principal, unit_id: str) -> None:
    """Departments touch only their own unit's assignments; other roles see all."""
    if p.role == UserRole.DEPARTMENT and p.unit_id != unit_id:
        log.warning("auth.other_unit", sub=p.sub, unit=p.unit_id, target=unit_id)
        raise HTTPException(403, f"unit {p.unit_id} may not act on unit {unit_id}'s assignments")


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


class BodyLimit(BaseHTTPMiddleware):
    """Refuse oversized bodies before they are read into memory."""

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        return await call_next(request)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in exc.errors()]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        log.info("request.invalid", path=request.url.path, errors=errors[:5])
        return JSONResponse(
            {"detail": f"{first['field']}: {first['message']}", "errors": errors}, status_code=422
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.failed", path=request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    app.add_middleware(BodyLimit)
