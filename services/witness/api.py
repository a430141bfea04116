"""HTTP routes of the witness: `POST /add-checkpoint` (c2sp.org/tlog-witness), what it has cosigned,
and health. No tokens: as the spec says, the log's signature on the checkpoint is the only
authentication a request needs, and what a witness has cosigned is public."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from services.shared.signed_note import Verifier
from services.witness.checks import SIZE_TYPE, AddCheckpoint, Refused, check, parse_request
from services.witness.cosigner import Cosigner
from services.witness.store import Recorded, advance, all_states, recorded

log = structlog.get_logger("witness")
router = APIRouter()


@dataclass
class Witness:
    """What the routes need, built by the app's lifespan and kept on app.state.witness."""

    engine: AsyncEngine
    cosigner: Cosigner
    trusted: dict[str, list[Verifier]]


def witness(request: Request) -> Witness:
    return request.app.state.witness  # type: ignore[no-any-return]


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def refusal(exc: Refused, req: AddCheckpoint | None, state: Recorded | None) -> Response:
    cp = req.checkpoint if req is not None else None
    if exc.rewrite and req is not None and cp is not None and state is not None:
        # Two checkpoints the log signed that no append-only history can both have: keep them both.
        log.error(
            "witness.rewrite_refused",
            origin=cp.origin,
            status=exc.status,
            old={"size": state.size, "root": b64(state.root), "note": state.note},
            new={"size": cp.size, "root": b64(cp.root), "note": req.note, "old_size": req.old},
        )
    else:
        log.warning("witness.refused", origin=cp.origin if cp else None, status=exc.status, reason=exc.message[:300])
    if exc.content_type == SIZE_TYPE:  # exactly the spec's type: Starlette would append a charset to text/*
        return Response(exc.message, status_code=exc.status, headers={"Content-Type": SIZE_TYPE})
    return PlainTextResponse(exc.message, status_code=exc.status)


@router.post(
    "/add-checkpoint",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "the witness's cosignature line(s) (cosignature/v1), each ending in a newline"},
        400: {"description": "a malformed request, or an old size above the checkpoint's size"},
        403: {"description": "no signature verifies with the log's keys"},
        404: {"description": "a log this witness does not witness"},
        409: {
            "description": "another old size (body: the size it cosigned last, as text/x.tlog.size), or the "
            "size it cosigned with another root hash"
        },  # fmt: skip
        422: {"description": "the consistency proof does not verify: the log was rewritten"},
    },
)
async def add_checkpoint(request: Request, w: Witness = Depends(witness)) -> Response:
    """Cosign the log's checkpoint if it extends the one this witness cosigned last (c2sp.org/tlog-witness).

    Body: `old <size>`, the consistency proof's hashes in base64 one a line, an empty line, the signed checkpoint.
    """
    req: AddCheckpoint | None = None
    state: Recorded | None = None
    try:
        req = parse_request(await request.body())
        for _ in range(2):
            async with w.engine.connect() as conn:
                state = await recorded(conn, req.checkpoint.origin)
            check(req, w.trusted, state)
            cp = req.checkpoint
            if state is not None and (state.size, state.root) == (cp.size, cp.root):
                break  # cosigned before: cosigned again, nothing to store
            if await advance(w.engine, cp.origin, state, cp.size, cp.root, req.note):
                break
            # another request moved this log meanwhile: checked again against what it stored
        else:
            async with w.engine.connect() as conn:
                state = await recorded(conn, req.checkpoint.origin)
            size = state.size if state is not None else 0
            raise Refused(409, f"{size}\n", SIZE_TYPE)
    except Refused as exc:
        return refusal(exc, req, state)
    line = w.cosigner.cosign(req.body)
    log.info("witness.cosigned", origin=req.checkpoint.origin, size=req.checkpoint.size, old=req.old)
    return PlainTextResponse(line + "\n")


@router.get("/v1/witness")
async def about(w: Witness = Depends(witness)) -> dict[str, Any]:
    """Who this witness is (its verifier key), the logs it trusts, and the latest checkpoint it cosigned of each."""
    async with w.engine.connect() as conn:
        states = await all_states(conn)
    return {
        "name": w.cosigner.name,
        "verifier_key": w.cosigner.vkey,
        "trusted_logs": {origin: [k.text for k in keys] for origin, keys in sorted(w.trusted.items())},
        "logs": states,
    }


@router.get("/healthz", include_in_schema=False)
@router.get("/readyz", include_in_schema=False)
async def healthz(w: Witness = Depends(witness)) -> dict[str, Any]:
    async with w.engine.connect() as conn:
        states = await all_states(conn)
    return {"status": "ok", "name": w.cosigner.name, "logs": len(states)}
