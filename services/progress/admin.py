"""Operators' endpoint: drop the read model and fold the whole event stream again (supervisors only).

`POST /v1/admin/rebuild-read-models` answers with NDJSON progress lines while it runs:
`{"done": n, "total": t}` per batch, then `{"finished": true, "messages": n, "position": p,
"assignments": a}` (or `{"error": "..."}`). The rebuild runs in its own task: a client that
goes away does not stop it halfway (and even then the rows would be the fold of a prefix of
the stream, the live consumer carrying on from the stored position). One rebuild at a time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import IO, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from contracts.base import UserRole
from services.progress import readmodel, readmodel_check
from services.progress.store import READ_MODEL
from services.shared.auth import Principal
from services.shared.lease import lock_file, try_exclusive_lock
from services.shared.web import principal, require_role

log = structlog.get_logger()
router = APIRouter(tags=["admin"])
NDJSON = "application/x-ndjson"


def operator(p: Principal = Depends(principal)) -> Principal:
    """Admins (operators) rebuild and check the read models."""
    return require_role(p, UserRole.ADMIN)


def _claim(request: Request) -> IO[bytes] | None:
    """The rebuild's flock beside the read-model lease: one rebuild at a time, in this process or
    any other worker process (PROGRESS_WORKERS > 1). None if a rebuild holds it."""
    settings = request.app.state.settings
    return try_exclusive_lock(lock_file(settings.db_url(), f"{settings.read_model_durable}.rebuild"))


async def _count(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(READ_MODEL.assignments))).scalar_one())


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode()


@router.post(
    "/v1/admin/rebuild-read-models",
    responses={200: {"content": {NDJSON: {}}, "description": "NDJSON progress lines, then a summary line"}},
)
async def rebuild_read_models(request: Request, caller: Principal = Depends(operator)) -> StreamingResponse:
    claim = _claim(request)
    if claim is None:
        raise HTTPException(409, "a rebuild is already running")
    app = request.app
    settings, engine = app.state.settings, app.state.engine
    lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def progress(done: int, total: int) -> None:
        lines.put_nowait({"done": done, "total": total})

    async def run() -> None:
        try:
            log.info("readmodel.rebuild_started", by=caller.sub)
            read = await readmodel.rebuild(
                engine,
                app.state.nats.jetstream(),
                stream=settings.event_stream,
                consumer=settings.read_model_durable,
                progress=progress,
            )
            pos = await readmodel.position(engine, settings.read_model_durable)
            rows = await _count(engine)
            log.info("readmodel.rebuilt", messages=read, position=pos, assignments=rows)
            lines.put_nowait({"finished": True, "messages": read, "position": pos, "assignments": rows})
        except Exception as exc:
            log.exception("readmodel.rebuild_failed")
            lines.put_nowait({"error": f"rebuild failed: {exc}"})
        finally:
            claim.close()  # drops the flock
            lines.put_nowait(None)

    task = asyncio.create_task(run(), name="rebuild-read-models")
    app.state.rebuild_task = task  # keep a reference: the task outlives a departed client

    async def body() -> AsyncIterator[bytes]:
        yield _line({"started": True})
        while (item := await lines.get()) is not None:
            yield _line(item)

    return StreamingResponse(body(), media_type=NDJSON)


@router.get("/v1/admin/check-read-models")
async def check_read_models(request: Request, caller: Principal = Depends(operator)) -> dict[str, Any]:
    """Fold the stream afresh into a scratch database and compare every row with the live read model."""
    app = request.app
    settings = app.state.settings
    verdict = await readmodel_check.check(
        app.state.engine, app.state.nats.jetstream(), settings.event_stream, settings.read_model_durable
    )
    if not verdict["ok"]:
        log.error("readmodel.check_failed", by=caller.sub, differences=verdict["differences_total"],
                  first=verdict["differences"][:3])  # fmt: skip
    return verdict
