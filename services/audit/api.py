"""HTTP routes of the audit service. Auditors and supervisors read; only supervisors write.

The one write is making a checkpoint on demand (supervisor). Every route but /healthz needs a
token; a department token is 403 everywhere, an auditor's is 403 on every write. Auditors read
the whole ledger (within a token's programmes); a supervisor with an area reads its assignments'
events only (services/shared/access.py), and the ledger-wide lists (gaps, rejects) not at all.
The access log is for auditors of every programme only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.access_log import AccessPage
from contracts.base import UserRole
from contracts.events import Event
from contracts.fold import fold
from contracts.ids import PROGRAMME_ID_PATTERN
from contracts.timeline import summary
from services.audit import proofs, queries
from services.audit.access_view import AccessFilter, access_page
from services.audit.checkpoints import Checkpointer
from services.audit.ledger import checkpoint_note
from services.audit.store import cosignatures_of, gaps, latest_checkpoint, ledger, ledger_size, rejects
from services.audit.subscribers import LedgerConsumer
from services.shared import access
from services.shared.auth import Principal
from services.shared.signed_note import Verifier
from services.shared.web import enforce, principal, refuse, require_role

NDJSON = "application/x-ndjson"
router = APIRouter()


@dataclass
class Audit:
    """What the routes need, built by the app's lifespan and kept on app.state.audit."""

    engine: AsyncEngine
    checkpointer: Checkpointer
    consumer: LedgerConsumer
    witnesses: list[tuple[str, Verifier]] = field(default_factory=list)


def audit(request: Request) -> Audit:
    return request.app.state.audit  # type: ignore[no-any-return]


def reader(p: Principal = Depends(principal)) -> Principal:
    return require_role(p, UserRole.AUDITOR, UserRole.SUPERVISOR)


def whole_ledger_reader(p: Principal = Depends(principal)) -> Principal:
    """Auditors and city-wide supervisors of every programme: what is not one assignment's."""
    require_role(p, UserRole.AUDITOR, UserRole.SUPERVISOR)
    if p.supervises or p.programmes:
        refuse(p, "ledger", "area", "只有审计人员和全市督查人员可以查看整个台账 (the whole ledger is for "
               "auditors and city-wide supervisors of every programme)")  # fmt: skip
    return p


def supervisor(p: Principal = Depends(principal)) -> Principal:
    return require_role(p, UserRole.SUPERVISOR)


def invalid(field: str, message: str) -> JSONResponse:
    """The same 422 shape as request validation errors (services.shared.web)."""
    return JSONResponse(
        {"detail": f"{field}: {message}", "errors": [{"field": field, "message": message}]}, status_code=422
    )


def wants_ndjson(request: Request) -> bool:
    return NDJSON in request.headers.get("accept", "")


def public_checkpoint(cp: dict[str, Any], cosigned: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A checkpoint as served: its row, its C2SP note (`note`, signed by the log), the witnesses'
    cosignatures, and `signed_note`: the note with every cosignature line appended."""
    cosigned = cosigned or []
    if cp.get("note") is None:  # made before signed notes: the legacy text its signature covers
        legacy = checkpoint_note(int(cp["size"]), cp["root"], cp["head"], cp["created_at"]).decode()
        return {**cp, "public_key_pem": cp["public_key"], "signed_note": legacy, "cosignatures": []}
    full = str(cp["note"]) + "".join(c["line"] + "\n" for c in cosigned)
    return {**cp, "public_key_pem": cp["public_key"], "signed_note": full, "cosignatures": cosigned}


@router.get("/healthz", include_in_schema=False)
@router.get("/readyz", include_in_schema=False)
async def healthz(a: Audit = Depends(audit)) -> Any:
    """Readiness: 503 with the reason while the ledger takes no events (its disk is full)."""
    async with a.engine.connect() as conn:
        size = await ledger_size(conn)
    body = {"status": "ok", "consumer": a.consumer.state, "ledger_size": size}
    trouble = a.consumer.runner.trouble if a.consumer.runner is not None else None
    if trouble:
        reason = f"台账暂停写入：磁盘已满，腾出空间后自动恢复（ledger paused: {trouble}）"
        return JSONResponse({**body, "status": "unavailable", "reason": reason}, status_code=503)
    return body


@router.get("/v1/audit/events")
async def list_events(
    request: Request,
    assignment_id: str | None = Query(None, min_length=1, max_length=200),
    unit_id: str | None = Query(None, min_length=1, max_length=100),
    type: str | None = Query(None, min_length=1, max_length=64),
    programme_id: str | None = Query(None, max_length=64, pattern=PROGRAMME_ID_PATTERN),
    after_seq: int = Query(0, ge=0, le=2**63 - 1, description="ledger_seq to start after"),
    limit: int | None = Query(None, ge=1, le=1_000_000, description="page size (JSON: default 100, max 1000)"),
    caller: Principal = Depends(reader),
    a: Audit = Depends(audit),
) -> Any:
    """The ledger's entries in order, of one programme (`programme_id`) or all, within the caller's area."""
    filters = queries.EventFilter(assignment_id, unit_id, type, programme_id, access.area(caller))
    if wants_ndjson(request):
        return StreamingResponse(queries.ndjson(a.engine, filters, after_seq, limit), media_type=NDJSON)
    if limit is not None and limit > 1000:
        return invalid("query.limit", "at most 1000 per page; ask for application/x-ndjson to stream more")
    return await queries.page(a.engine, filters, after_seq, limit or 100)


@router.get("/v1/audit/assignments/{assignment_id}/history")
async def assignment_history(assignment_id: str, caller: Principal = Depends(reader), a: Audit = Depends(audit)) -> Any:
    rows = await queries.history(a.engine, assignment_id)
    if not rows:
        raise HTTPException(404, f"no events for assignment {assignment_id}")
    events = [Event.model_validate_json(r.canonical) for r in rows]
    record = access.Record(events[0].programme_id, events[0].task_no or 0, events[0].unit_id or "")
    enforce(caller, access.decide(caller, record), assignment_id)
    state = fold(events)
    items = [
        {
            "seq": e.seq,
            "ledger_seq": r.ledger_seq,
            "event_id": e.event_id,
            "type": e.type,
            "occurred_at": e.occurred_at,
            "actor": e.actor,
            "summary": summary(e.type, e.payload),
            "payload": e.payload,
            "hash": r.hash,
        }
        for r, e in zip(rows, events, strict=True)
    ]
    first = events[0]
    return {
        "assignment_id": assignment_id,
        "programme_id": first.programme_id,
        "task_no": first.task_no,
        "unit_id": first.unit_id,
        "state": state,
        "items": items,
    }


@router.get("/v1/audit/replay")
async def replay(
    request: Request,
    as_of: dt.datetime = Query(..., description="ISO 8601; without a zone it is UTC"),
    unit_id: str | None = Query(None, min_length=1, max_length=100),
    task_no: int | None = Query(None, ge=1, le=999),
    programme_id: str | None = Query(None, max_length=64, pattern=PROGRAMME_ID_PATTERN),
    caller: Principal = Depends(reader),
    a: Audit = Depends(audit),
) -> Any:
    """Every assignment's state as of a moment, folded from the ledger: of one programme
    (`programme_id`) or all, within the caller's area."""
    states = queries.replay(a.engine, as_of, unit_id, task_no, programme_id, access.area(caller))
    if wants_ndjson(request):

        async def lines() -> AsyncIterator[bytes]:
            async for s in states:
                yield (s.model_dump_json() + "\n").encode()

        return StreamingResponse(lines(), media_type=NDJSON)
    items = [json.loads(s.model_dump_json()) async for s in states]
    return {"as_of": as_of, "items": items, "total": len(items)}


@router.get("/v1/audit/verify")
async def verify(
    strict: bool = Query(False, description="also re-canonicalise every stored event (RFC 8785) and compare bytes"),
    _: Principal = Depends(reader),
    a: Audit = Depends(audit),
) -> dict[str, Any]:
    return await queries.verify(a.engine, a.checkpointer.signer.public_pem, strict)


@router.post("/v1/audit/checkpoints", status_code=201)
async def make_checkpoint(_: Principal = Depends(supervisor), a: Audit = Depends(audit)) -> Any:
    cp = await a.checkpointer.checkpoint()
    if cp is None:
        raise HTTPException(409, "the ledger is empty: nothing to checkpoint")
    return public_checkpoint(cp)


@router.get("/v1/audit/checkpoints/latest")
async def latest(request: Request, _: Principal = Depends(reader), a: Audit = Depends(audit)) -> Any:
    """The latest checkpoint: JSON, or with `Accept: text/plain` the C2SP signed note (cosignatures included)."""
    async with a.engine.connect() as conn:
        cp = await latest_checkpoint(conn)
        cosigned = await cosignatures_of(conn, int(cp["size"])) if cp is not None else []
    if cp is None:
        raise HTTPException(404, "no checkpoint yet")
    public = public_checkpoint(cp, cosigned)
    if "text/plain" in request.headers.get("accept", ""):
        return PlainTextResponse(public["signed_note"], media_type="text/plain; charset=utf-8")
    return public


@router.get("/v1/audit/checkpoints")
async def all_checkpoints(_: Principal = Depends(reader), a: Audit = Depends(audit)) -> Any:
    cps, cosigned = await queries.checkpoint_list(a.engine)
    items = [public_checkpoint(cp, cosigned.get(int(cp["size"]))) for cp in cps]
    signer = a.checkpointer.signer
    return {
        "items": items,
        "total": len(items),
        "public_key_pem": signer.public_pem,
        "origin": signer.origin,
        "verifier_key": signer.vkey,
        "witness_keys": [w.text for _, w in a.witnesses],
    }


async def _checkpoint(a: Audit, size: int | None, field: str) -> dict[str, Any]:
    async with a.engine.connect() as conn:
        cp = await latest_checkpoint(conn, size)
    if cp is None:
        raise HTTPException(404, f"{field}: no checkpoint of size {size}" if size else "no checkpoint yet")
    return cp


@router.get("/v1/audit/proofs/inclusion")
async def inclusion(
    event_id: str = Query(..., min_length=1, max_length=200),
    size: int | None = Query(None, ge=1, le=2**63 - 1, description="a checkpoint's size; default the latest"),
    caller: Principal = Depends(reader),
    a: Audit = Depends(audit),
) -> Any:
    """An entry's inclusion proof, with the entry itself: its event is read as any other event is
    (a supervisor with an area: its own assignments' only)."""
    cp = await _checkpoint(a, size, "query.size")
    async with a.engine.connect() as conn:
        query = select(ledger.c.ledger_seq, ledger.c.canonical, ledger.c.prev_hash, ledger.c.hash)
        row = (await conn.execute(query.where(ledger.c.event_id == event_id))).first()
        if row is None:
            raise HTTPException(404, f"no event {event_id} in the ledger")
        if not (seen := access.area(caller)).everything or seen.programmes:
            e = Event.model_validate_json(row.canonical)
            record = access.Record(e.programme_id, e.task_no or 0, e.unit_id or "")
            if e.assignment_id is None and not seen.everything:
                record = access.Record(e.programme_id, 0, "")  # a programme-wide fact: not an area's
            enforce(caller, access.decide(caller, record), event_id)
        if row.ledger_seq > cp["size"]:
            detail = f"event {event_id} (ledger_seq {row.ledger_seq}) is newer than checkpoint {cp['size']}"
            raise HTTPException(409, detail)
        path = await proofs.inclusion_proof(conn, row.ledger_seq - 1, int(cp["size"]))
    return {
        "event_id": event_id,
        "ledger_seq": row.ledger_seq,
        "leaf_index": row.ledger_seq - 1,
        "tree_size": cp["size"],
        "entry": {"prev_hash": row.prev_hash, "hash": row.hash, "canonical": row.canonical},
        "proof": [h.hex() for h in path],
        "checkpoint": public_checkpoint(cp),
    }


@router.get("/v1/audit/proofs/consistency")
async def consistency(
    from_: int = Query(..., alias="from", ge=1, le=2**63 - 1, description="the older checkpoint's size"),
    to: int | None = Query(None, ge=1, le=2**63 - 1, description="the newer checkpoint's size; default the latest"),
    _: Principal = Depends(reader),
    a: Audit = Depends(audit),
) -> Any:
    new = await _checkpoint(a, to, "query.to")
    if from_ > new["size"]:
        return invalid("query.from", f"must not exceed to ({new['size']})")
    old = await _checkpoint(a, from_, "query.from")
    async with a.engine.connect() as conn:
        path = await proofs.consistency_proof(conn, from_, int(new["size"]))
    return {
        "from": public_checkpoint(old),
        "to": public_checkpoint(new),
        "proof": [h.hex() for h in path],
    }


@router.get("/v1/audit/gaps")
async def list_gaps(_: Principal = Depends(whole_ledger_reader), a: Audit = Depends(audit)) -> Any:
    """Sequence gaps seen at ingest: an assignment's events that arrived with seqs missing."""
    async with a.engine.connect() as conn:
        rows = (await conn.execute(select(gaps).order_by(gaps.c.id).limit(10_000))).mappings().all()
    return {"items": [dict(r) for r in rows], "total": len(rows)}


@router.get("/v1/audit/rejects")
async def list_rejects(_: Principal = Depends(whole_ledger_reader), a: Audit = Depends(audit)) -> Any:
    """Messages on the event stream that were not valid events (kept, acknowledged, never ledgered)."""
    query = select(rejects.c.id, rejects.c.stream_seq, rejects.c.subject, rejects.c.reason, rejects.c.received_at)
    async with a.engine.connect() as conn:
        rows = (await conn.execute(query.order_by(rejects.c.id).limit(10_000))).mappings().all()
    return {"items": [dict(r) for r in rows], "total": len(rows)}


@router.get("/v1/audit/access", response_model=AccessPage, tags=["access"])
async def access_log(
    caller: Principal = Depends(principal),
    a: Audit = Depends(audit),
    sub: str | None = Query(None, max_length=200, description="the caller's subject (user name or token sub)"),
    unit_id: str | None = Query(None, max_length=100),
    service: str | None = Query(None, max_length=32),
    refused: bool | None = Query(None, description="true: refusals only; false: allowed only"),
    since: dt.datetime | None = Query(None, description="from this time (ISO 8601)"),
    until: dt.datetime | None = Query(None, description="before this time (ISO 8601)"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**63 - 1),
) -> AccessPage:
    """Auditors: every access decision of every service (who asked for what, allowed or refused,
    and by which rule), newest first; reads as well as commands. Never a token, a body or a query."""
    require_role(caller, UserRole.AUDITOR)
    if caller.programmes:
        refuse(caller, "access log", "area", "访问日志只供不限方案的审计人员查看 (the access log is for auditors of "
               "every programme: it is not kept by programme)")  # fmt: skip
    f = AccessFilter(sub, unit_id, service, refused, since, until)
    items, total = await access_page(a.engine, f, limit, offset)
    return AccessPage(items=items, total=total, limit=limit, offset=offset)
