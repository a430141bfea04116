"""FastAPI plumbing every service uses: bearer auth dependency, error shapes, body limits."""

from __future__ import annotations

import re
from typing import Annotated, Any, NoReturn

import structlog
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import text
from contracts.base import UserRole
from services.shared import access, access_log, plain_errors
from services.shared.auth import AuthError, Principal, verify_token_cached
from services.shared.disk import disk_full
from services.shared.oidc import AccessRefused, issued_here

log = structlog.get_logger()
MAX_BODY_BYTES = 1024 * 1024
# What a 401 tells a person to do: where a token comes from and how the CLI finds it.
WHAT_TO_DO = (
    "sign in with `policyflow login`, or get one with "
    "`policyflow token issue --role ROLE [--unit UNIT] --save` (roles: department with --unit, "
    "supervisor or verifier [--supervises unit:UNIT|task:PROGRAMME/N], auditor, admin), or export it as "
    "POLICYFLOW_TOKEN, and send it as `Authorization: Bearer TOKEN`"
)


def token_from(request: Request) -> str | None:
    """The bearer token of the Authorization header. The pages' session cookie is no API
    credential: a browser would send it with a forged cross-site request."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


async def verify_bearer(request: Request, token: str) -> Principal:
    """The person a bearer token names, or AuthError (AccessRefused: genuine, but refused).

    A token naming this installation's issuer is checked with the local key when AUTH_LOCAL_TOKENS
    allows it; any other with the single sign-on provider (services/shared/oidc.py) when one is set.
    """
    state = request.app.state
    provider = getattr(state, "oidc", None)
    if provider is not None and not issued_here(token):
        p: Principal = await provider.verify(token, getattr(state, "known_unit", None))
    elif not getattr(state, "local_tokens", True):
        raise AuthError("this installation's own tokens are not accepted here (AUTH_LOCAL_TOKENS=false): sign in")
    else:
        p = verify_token_cached(token, state.public_key)
        revoked = getattr(state, "revocations", None)
        if revoked is not None and revoked.refused(p.sub, p.issued_at):
            raise AuthError(f"账号 {p.sub} 已停用或已重设密码，此令牌不再有效，请重新登录 (the account was disabled or "
                            "its password reset after this token was issued: sign in again)")  # fmt: skip
    access_log.note(sub=p.sub, role=p.role.value, unit_id=p.unit_id)
    return p


async def principal(request: Request) -> Principal:
    """The caller, or 401. The public key is on app.state, loaded at start-up.

    A coroutine on purpose: FastAPI runs a plain-function dependency in its thread pool, a
    thread hop per request for what is a dictionary lookup once a token has been verified.
    """
    token = token_from(request)
    if not token:
        access_log.note(why="no token")
        raise HTTPException(
            401, f"未提供令牌，请先取得令牌 (no token was sent); {WHAT_TO_DO}", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        p = await verify_bearer(request, token)
    except AccessRefused as exc:
        log.warning("auth.refused", reason=str(exc), path=request.url.path)
        access_log.note(why=f"token refused: {exc}")
        raise HTTPException(403, f"令牌被拒绝 ({exc})") from exc
    except AuthError as exc:
        log.warning("auth.rejected", reason=str(exc), path=request.url.path)
        access_log.note(why=f"token rejected: {exc}")
        raise HTTPException(401, f"令牌无效 ({exc}); {WHAT_TO_DO}", headers={"WWW-Authenticate": "Bearer"}) from exc
    return p


def refuse(p: Principal, target: str, why: str, words: str) -> NoReturn:
    """The one way a service says 403 to a signed-in caller: logged as `auth.refused` with who asked,
    for what, and which rule (`why`: role, unit, programme, area, task, ...), answered in `words`."""
    log.warning("auth.refused", sub=p.sub, role=p.role.value, target=target, why=why)
    access_log.note(target=target, why=words)
    raise HTTPException(403, words)


def require_role(p: Principal, *roles: UserRole) -> Principal:
    if p.role not in roles:
        refuse(p, ",".join(r.value for r in roles), "role", access.role_refusal(p, roles))
    return p


class HasRole:
    """A dependency: the caller, if its role is one of `roles` (else 403). As a dependency it is
    judged before the request's parameters and body, so 401 and 403 come before any 422."""

    def __init__(self, *roles: UserRole) -> None:
        self.roles = roles

    async def __call__(self, p: Annotated[Principal, Depends(principal)]) -> Principal:
        return require_role(p, *self.roles)


def enforce(p: Principal, decision: access.Decision, target: str) -> None:
    """Answer `access.decide`'s refusal with 403, its reason in words; either way the decision goes
    to the access log."""
    access_log.note(target=target, why=decision.why)
    if not decision.allowed:
        refuse(p, target, "decision", decision.why)


def require_programme(p: Principal, programme_id: str) -> None:
    """403 for a programme outside a token limited to others."""
    if not p.in_programme(programme_id):
        refuse(p, programme_id, "programme", access.programme_refusal(p, programme_id))


def require_unit(p: Principal, unit_id: str) -> None:
    """A department touches only its own unit's; a supervisor or verifier with an area only its units'."""
    if not access.area(p).has_unit(unit_id) and p.role != UserRole.AUDITOR:
        if p.role == UserRole.DEPARTMENT:
            refuse(
                p,
                unit_id,
                "unit",
                f"单位 {p.unit_id} 不能办理单位 {unit_id} 的任务 "
                f"(unit {p.unit_id} may not act on unit {unit_id}'s assignments)",
            )
        refuse(
            p,
            unit_id,
            "area",
            f"督查范围（{access.area_words(p)}）不含单位 {unit_id} "
            f"(your supervised area, {access.area_words(p)}, does not include unit {unit_id})",
        )


class BodyLimit:
    """Refuse oversized bodies before they are read into memory, and log it.

    A declared Content-Length over the limit is answered at once; a body without one (chunked)
    is counted as it arrives and refused the moment it passes the limit (FastAPI re-raises an
    HTTPException raised while it reads the body, so the answer is the same 413).
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    def _limit(self, scope: Scope) -> tuple[int, str]:
        """The limit and the refusal for this path: an upload route's own (allow_larger_body), or the default."""
        state = getattr(scope.get("app"), "state", None)
        for pattern, limit, message in getattr(state, "larger_bodies", ()):
            if pattern.fullmatch(scope.get("path", "")):
                return limit, message
        return self.limit, f"body larger than {self.limit} bytes"

    def _too_large(self, scope: Scope, limit: int, message: str) -> HTTPException:
        log.warning("request.too_large", path=scope.get("path"), limit=limit)
        return HTTPException(413, message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, refusal = self._limit(scope)
        length = Headers(scope=scope).get("content-length")
        if length and length.isdigit() and int(length) > limit:
            err = self._too_large(scope, limit, refusal)
            await JSONResponse({"detail": err.detail}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise self._too_large(scope, limit, refusal)
            return message

        await self.app(scope, counted, send)


def refuse_hidden_in_names(value: Any) -> None:
    """422 for a name, title or file name holding a bidi override or a control character
    (contracts/text.py): shown to others, it would read as something it is not."""
    for path, found in text.hidden_in_names(value):
        field = plain_errors.field_of(path)
        log.info("request.invalid", field=field, hidden=[text.code(ch) for ch in found])
        raise HTTPException(422, f"{field} {text.refusal(found)}")


def allow_larger_body(app: FastAPI, path: str, limit: int, message: str) -> None:
    """Requests whose path matches the regular expression `path` may carry up to `limit` bytes
    (an upload route); a larger one is refused with `message`."""
    app.state.larger_bodies = (*getattr(app.state, "larger_bodies", ()), (re.compile(path), limit, message))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = plain_errors.plain(list(exc.errors()))
        log.info("request.invalid", path=request.url.path, errors=errors[:5])
        return JSONResponse({"detail": plain_errors.summary(errors), "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if full := disk_full(exc):
            log.error("request.disk_full", path=request.url.path, reason=full)
            detail = f"磁盘已满，暂时无法保存，请稍后重试（disk full: {full}; nothing was saved, try again later）"
            return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            # The database went away under the request (a restart, a fail-over): the pool is renewed.
            log.error("request.database_lost", path=request.url.path, error=str(exc.orig)[:200])
            detail = "数据库连接中断，请稍后重试（the database connection was lost; try again in a moment）"
            return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "2"})
        log.exception("request.failed", path=request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    app.add_middleware(BodyLimit)


def install_liveness(app: FastAPI) -> None:
    """`GET /livez`: the process answers, nothing else (no database, no broker).

    The liveness probe: a stuck dependency shows in `/healthz` (readiness) and must not get a
    healthy process restarted. Also the bare endpoint the status benchmark compares with.
    """

    @app.get("/livez", tags=["health"])
    async def livez() -> dict[str, str]:
        return {"status": "ok"}
