"""HTTP routes of the notification service: subscriptions, the deliveries, the dead letters.

A unit manages its own subscriptions and sees its own deliveries; supervisors do both for the
units of their area (any unit when city-wide). Supervisors have subscriptions of their own (red
escalations, extension requests): the city-wide ones one list, a 督查室 with an area one for it;
city-wide supervisors see every delivery and re-send dead letters.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.api import Page
from contracts.base import UserRole
from contracts.notify import DeliveryOut, DeliveryStatus, RejectOut, SubscriptionsIn, SubscriptionsOut, WebhookOut
from services.notify.addresses import AddressRefused, check_email, check_webhook_url
from services.notify.store import deliveries, positions, rejects, subscriptions, supervisor_owners, utc
from services.shared.auth import Principal
from services.shared.web import principal, refuse, require_role, require_unit

router = APIRouter()
Caller = Annotated[Principal, Depends(principal)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]
UNIT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def engine_of(request: Request) -> AsyncEngine:
    return request.app.state.engine  # type: ignore[no-any-return]


class Invalid(Exception):
    """One or more fields refused; every one is named so that a form can be fixed in one go."""

    def __init__(self, *problems: tuple[str, str]) -> None:
        super().__init__(problems[0][1])
        self.problems = problems


def install_invalid_handler(app: FastAPI) -> None:
    @app.exception_handler(Invalid)
    async def _invalid(_request: Request, exc: Invalid) -> JSONResponse:
        return invalid(*exc.problems)


def invalid(*problems: tuple[str, str]) -> JSONResponse:
    """The same 422 shape as request validation errors (services.shared.web)."""
    detail = "; ".join(f"{field}: {message}" for field, message in problems)
    errors = [{"field": field, "message": message} for field, message in problems]
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


def _mask(secret: str) -> str:
    return f"{secret[:6]}…{secret[-4:]}"


def _checked(body: SubscriptionsIn, allow_private: bool) -> tuple[list[str], list[str]]:
    emails: list[str] = []
    urls: list[str] = []
    problems: list[tuple[str, str]] = []
    for i, address in enumerate(body.emails):
        try:
            emails.append(check_email(address))
        except AddressRefused as exc:
            problems.append((f"emails.{i}", str(exc)))
    for i, hook in enumerate(body.webhooks):
        try:
            urls.append(check_webhook_url(hook.url, allow_private))
        except AddressRefused as exc:
            problems.append((f"webhooks.{i}.url", str(exc)))
    if problems:
        raise Invalid(*problems)
    return list(dict.fromkeys(emails)), list(dict.fromkeys(urls))


async def _read(engine: AsyncEngine, owners: list[str], shown: dict[str, str] | None = None) -> SubscriptionsOut:
    """The addresses kept under `owners` (one list, kept the same under each)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(subscriptions).where(subscriptions.c.owner.in_(owners)).order_by(subscriptions.c.created_at)
            )
        ).all()
    shown = shown or {}
    emails = list(dict.fromkeys(r.address for r in rows if r.channel == "email"))
    secret_of = {r.address: r.secret or "" for r in rows if r.channel == "webhook"}
    hooks = [
        WebhookOut(url=url, secret=shown.get(url) or _mask(secret), secret_shown_once=url in shown)
        for url, secret in secret_of.items()
    ]
    return SubscriptionsOut(owner=" ".join(owners), emails=emails, webhooks=hooks)


async def _replace(request: Request, owners: list[str], body: SubscriptionsIn) -> SubscriptionsOut:
    """Put the list under each of `owners`; a webhook already there keeps its secret, a new one gets
    one secret for all."""
    emails, urls = _checked(body, request.app.state.settings.allow_private_urls)
    engine = engine_of(request)
    now = dt.datetime.now(dt.UTC)
    mine = subscriptions.c.owner.in_(owners)
    async with engine.begin() as conn:
        kept = {
            r.address: r.secret
            for r in await conn.execute(
                select(subscriptions.c.address, subscriptions.c.secret).where(
                    mine, subscriptions.c.channel == "webhook"
                )
            )
        }
        new_secrets = {url: "whsec_" + secrets.token_hex(24) for url in urls if url not in kept}
        await conn.execute(delete(subscriptions).where(mine))
        rows: list[dict[str, Any]] = [
            {"owner": owner, "channel": "email", "address": e, "secret": None, "created_at": now}
            for owner in owners
            for e in emails
        ]
        rows += [
            {"owner": owner, "channel": "webhook", "address": url, "created_at": now,
             "secret": kept.get(url) or new_secrets[url]}
            for owner in owners
            for url in urls
        ]  # fmt: skip
        if rows:
            await conn.execute(subscriptions.insert(), rows)
    return await _read(engine, owners, new_secrets)


def city_supervisor(caller: Principal) -> None:
    """The supervisors' own subscriptions and every unit's deliveries: city-wide supervisors of every
    programme (a district's 督查室 uses its units' routes)."""
    require_role(caller, UserRole.SUPERVISOR)
    if not caller.city_wide or caller.programmes:
        refuse(caller, "notifications", "area", "只有全市督查人员可以操作 (city-wide supervisors only; a "
               "supervisor with an area uses /v1/units/{unit_id}/... for its units)")  # fmt: skip


def _unit_owner(caller: Principal, unit_id: str) -> str:
    require_role(caller, UserRole.DEPARTMENT, UserRole.SUPERVISOR)
    if not UNIT_ID.match(unit_id):
        raise Invalid(("unit_id", "单位编号只能由字母、数字、点、下划线和连字符组成 (not a unit id)"))
    require_unit(caller, unit_id)
    return unit_id


@router.put("/v1/units/{unit_id}/subscriptions", response_model=SubscriptionsOut, tags=["subscriptions"])
async def put_unit_subscriptions(
    request: Request, caller: Caller, unit_id: str, body: SubscriptionsIn
) -> SubscriptionsOut:
    """Replace the unit's e-mail addresses and webhooks; the answer shows each new webhook's secret once."""
    return await _replace(request, [_unit_owner(caller, unit_id)], body)


@router.get("/v1/units/{unit_id}/subscriptions", response_model=SubscriptionsOut, tags=["subscriptions"])
async def get_unit_subscriptions(request: Request, caller: Caller, unit_id: str) -> SubscriptionsOut:
    return await _read(engine_of(request), [_unit_owner(caller, unit_id)])


def supervisor_area(caller: Principal) -> list[str]:
    """The owners of a supervisor's own subscriptions: the city's, or its area's parts. A token limited
    to programmes without an area has no list of its own (the city's would hear of every programme)."""
    require_role(caller, UserRole.SUPERVISOR)
    if caller.city_wide and caller.programmes:
        refuse(caller, "subscriptions", "area", "限定方案的全市督查令牌没有自己的订阅，请使用不限方案的账号 (a "
               "city-wide token limited to programmes has no subscriptions of its own)")  # fmt: skip
    return supervisor_owners(caller.supervises)


@router.put("/v1/supervisors/subscriptions", response_model=SubscriptionsOut, tags=["subscriptions"])
async def put_supervisor_subscriptions(request: Request, caller: Caller, body: SubscriptionsIn) -> SubscriptionsOut:
    """The supervisors' own addresses: red escalations and extension requests go there too. City-wide
    supervisors share one list for every unit; a 督查室 with an area (`unit:…`, `task:…`) keeps its
    own, told of its area's only."""
    return await _replace(request, supervisor_area(caller), body)


@router.get("/v1/supervisors/subscriptions", response_model=SubscriptionsOut, tags=["subscriptions"])
async def get_supervisor_subscriptions(request: Request, caller: Caller) -> SubscriptionsOut:
    return await _read(engine_of(request), supervisor_area(caller))


def _out(row: Any, now: dt.datetime) -> DeliveryOut:
    held = utc(row.not_before)
    pending = row.status == "pending"
    return DeliveryOut(
        delivery_id=row.id, event_id=row.event_id, event_type=row.event_type, unit_id=row.unit_id,
        assignment_id=row.assignment_id, channel=row.channel, recipient=row.recipient, level=row.level,
        subject=row.subject, status=row.status, held_until=held if pending and held and held > now else None,
        attempts=row.attempts, next_attempt_at=utc(row.next_attempt_at) if pending else None,
        last_error=row.last_error, created_at=utc(row.created_at), sent_at=utc(row.sent_at), digest_id=row.digest_id,
    )  # fmt: skip


async def _page(request: Request, where: list[Any], limit: int, offset: int) -> Page[DeliveryOut]:
    async with engine_of(request).connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(deliveries).where(*where))).scalar_one()
        rows = await conn.execute(
            select(deliveries)
            .where(*where)
            .order_by(deliveries.c.created_at.desc(), deliveries.c.id)
            .limit(limit)
            .offset(offset)
        )
        now = request.app.state.clock()
        return Page[DeliveryOut](items=[_out(r, now) for r in rows], total=int(total))


@router.get("/v1/units/{unit_id}/notifications", response_model=Page[DeliveryOut], tags=["deliveries"])
async def unit_deliveries(
    request: Request, caller: Caller, unit_id: str, status: DeliveryStatus | None = None,
    limit: Limit = 50, offset: Offset = 0,
) -> Page[DeliveryOut]:  # fmt: skip
    """Every notice to the unit's addresses: sent, waiting (with its retries) and dead-lettered."""
    _unit_owner(caller, unit_id)
    where = [deliveries.c.owner == unit_id] + ([deliveries.c.status == status] if status else [])
    return await _page(request, where, limit, offset)


@router.get("/v1/notifications", response_model=Page[DeliveryOut], tags=["deliveries"])
async def all_deliveries(
    request: Request, caller: Caller, status: DeliveryStatus | None = None, unit_id: str | None = None,
    limit: Limit = 50, offset: Offset = 0,
) -> Page[DeliveryOut]:  # fmt: skip
    city_supervisor(caller)
    where = ([deliveries.c.status == status] if status else []) + ([deliveries.c.unit_id == unit_id] if unit_id else [])
    return await _page(request, where, limit, offset)


@router.get("/v1/notifications/failed", response_model=Page[DeliveryOut], tags=["deliveries"])
async def dead_letters(request: Request, caller: Caller, limit: Limit = 50, offset: Offset = 0) -> Page[DeliveryOut]:
    """Deliveries given up after the last retry (or refused outright), for a supervisor to re-send."""
    city_supervisor(caller)
    return await _page(request, [deliveries.c.status == "dead"], limit, offset)


@router.get("/v1/notifications/rejects", response_model=Page[RejectOut], tags=["deliveries"])
async def rejected(request: Request, caller: Caller, limit: Limit = 50, offset: Offset = 0) -> Page[RejectOut]:
    """Messages of the event stream that could not be read (not JSON, not an event, an unknown type):
    nobody was told of them; each was recorded here and not delivered to the notifier again."""
    city_supervisor(caller)
    async with engine_of(request).connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(rejects))).scalar_one()
        rows = await conn.execute(
            select(rejects).order_by(rejects.c.stream_seq.desc(), rejects.c.id).limit(limit).offset(offset)
        )
        items = [
            RejectOut(
                reject_id=r.id,
                stream_seq=r.stream_seq,
                subject=r.subject,
                event_id=r.event_id,
                reason=r.reason,
                body=r.body,
                received_at=utc(r.received_at) or r.received_at,
            )  # fmt: skip
            for r in rows
        ]
    return Page[RejectOut](items=items, total=int(total))


@router.post("/v1/notifications/{delivery_id}/retry", response_model=DeliveryOut, tags=["deliveries"])
async def retry(request: Request, caller: Caller, delivery_id: str) -> DeliveryOut:
    """Send a dead-lettered delivery once more, now (quiet hours do not hold a re-send by hand). It
    starts the retry schedule afresh: should this send fail too, it is tried again with backoff
    before it is dead-lettered once more (its last error stays shown meanwhile)."""
    city_supervisor(caller)
    now = request.app.state.clock()
    async with engine_of(request).begin() as conn:
        row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
        if row is None:
            raise HTTPException(404, f"没有编号为 {delivery_id} 的通知 (no such delivery)")
        if row.status != "dead":
            raise HTTPException(
                409, f"该通知的状态是 {row.status}，只有发送失败的通知可以重发 (only dead letters are re-sent)"
            )
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(status="pending", next_attempt_at=now, attempts=0)
        )
        row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).one()
    request.app.state.sender.wake()
    return _out(row, now)


@router.get("/healthz", tags=["health"])
async def healthz(request: Request) -> dict[str, Any]:
    async with engine_of(request).connect() as conn:
        await conn.execute(text("SELECT 1"))
        position = (await conn.execute(select(func.max(positions.c.stream_seq)))).scalar()
    return {
        "status": "ok",
        "position": int(position or 0),
        "sent": request.app.state.sender.sent,
        "active": request.app.state.lease.held,  # this process holds the lease: it consumes and sends
    }


@functools.cache
def _asyncapi() -> dict[str, Any]:
    from services.notify.asyncapi import asyncapi_document  # built on first request, then kept

    return asyncapi_document()


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi() -> JSONResponse:
    """The event stream's AsyncAPI document (as committed under docs/), generated from this
    service's FastStream broker and the contracts."""
    return JSONResponse(_asyncapi())
