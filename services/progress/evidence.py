"""Evidence files (佐证材料): uploaded by the assignment's unit, kept once by SHA-256, read by the
unit, its task's lead unit, supervisors, verifiers and auditors; a report names only files
uploaded for its assignment."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as InPath
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import UploadFile

from contracts.base import UserRole
from services.progress import api, filetypes, uploads
from services.progress.blobs import BlobMissing, BlobStore
from services.progress.store import evidence_files
from services.shared.auth import Principal
from services.shared.web import principal

log = structlog.get_logger()
router = APIRouter(tags=["evidence"])

MIB, MAX_FILE_BYTES = uploads.MIB, uploads.MAX_FILE_BYTES
# The request around the file: its multipart boundaries and headers (BodyLimit, services/shared/web.py).
MAX_UPLOAD_BODY = MAX_FILE_BYTES + 256 * 1024
UPLOAD_PATH = r"/v1/assignments/[^/]+/evidence"
TOO_LARGE_BODY = f"the upload is larger than {MAX_FILE_BYTES // MIB} MiB, the most one evidence file may be"
SHA256 = Annotated[str, InPath(pattern=r"^[0-9a-f]{64}$", description="the file's SHA-256, 64 lower-case hex digits")]


class EvidenceOut(BaseModel):
    sha256: str
    size: int
    name: str
    media_type: str
    uploaded_by: str
    uploaded_at: dt.datetime


class EvidenceList(BaseModel):
    assignment_id: str
    items: list[EvidenceOut]
    total: int


def _detect(path: Path) -> filetypes.Kind | None:
    with path.open("rb") as f:
        return filetypes.detect(f)


def _out(row: Any) -> EvidenceOut:
    at = row.uploaded_at if row.uploaded_at.tzinfo else row.uploaded_at.replace(tzinfo=dt.UTC)
    return EvidenceOut(
        sha256=row.sha256, size=row.size, name=row.name, media_type=row.media_type,
        uploaded_by=row.uploaded_by, uploaded_at=at,
    )  # fmt: skip


async def _recorded(request: Request, assignment_id: str, sha256: str) -> EvidenceOut | None:
    t = evidence_files.c
    async with request.app.state.engine.connect() as conn:
        q = select(evidence_files).where(t.assignment_id == assignment_id, t.sha256 == sha256)
        row = (await conn.execute(q)).first()
    return _out(row) if row is not None else None


async def keep(request: Request, who: Principal, assignment_id: str, spool: uploads.Spool) -> tuple[EvidenceOut, bool]:
    """Check a spooled upload's kind, keep its content once and record it for the assignment:
    (the record, whether it is new). The spool is consumed."""
    blobs: BlobStore = request.app.state.blobs
    try:
        if spool.size == 0:
            raise HTTPException(422, f"{spool.name} is empty; choose the file again")
        kind = await asyncio.to_thread(_detect, spool.path)
        if kind is None:
            log.warning("evidence.refused_kind", assignment_id=assignment_id, name=spool.name, sub=who.sub)
            raise HTTPException(
                415, f"{spool.name} is not a kind of file accepted as evidence. Accepted are "
                f"{filetypes.ACCEPTED_KINDS}; the kind is told from the file's content, not from its name",
            )  # fmt: skip
        sha = spool.digest.hexdigest()
        existing = await _recorded(request, assignment_id, sha)
        if existing is not None and await blobs.has(sha):
            return existing, False
        await blobs.put(sha, spool.path)
    finally:
        spool.discard()  # after put, nothing is left to remove
    if existing is not None:
        return existing, False
    row = {
        "assignment_id": assignment_id, "sha256": sha, "name": spool.name, "media_type": kind.media_type,
        "size": spool.size, "uploaded_by": who.sub, "uploaded_at": dt.datetime.now(dt.UTC),
    }  # fmt: skip
    try:
        async with request.app.state.engine.begin() as conn:
            await conn.execute(evidence_files.insert(), [row])
    except IntegrityError:  # the same file, uploaded twice at once
        again = await _recorded(request, assignment_id, sha)
        if again is None:
            raise
        return again, False
    log.info("evidence.stored", assignment_id=assignment_id, sha256=sha, size=spool.size, sub=who.sub)
    return EvidenceOut.model_validate({k: row[k] for k in EvidenceOut.model_fields}), True


async def store_upload(
    request: Request, who: Principal, assignment_id: str, upload: UploadFile
) -> tuple[EvidenceOut, bool]:
    """A file a form has already parsed (the workbench's report form), kept like an API upload."""
    spool = await uploads.spool_upload(request.app.state.blobs.scratch, upload)
    return await keep(request, who, assignment_id, spool)


@router.post(
    "/v1/assignments/{assignment_id}/evidence",
    status_code=201,
    response_model=EvidenceOut,
    summary="Upload an evidence file (佐证材料)",
    description=f"The assignment's own unit. Multipart, field `file`, at most {MAX_FILE_BYTES // MIB} MiB; "
    f"accepted kinds, told by content: {filetypes.ACCEPTED_KINDS}. 201 when new, 200 when the same file was "
    "already uploaded for this assignment (kept once).",
    responses={200: {"model": EvidenceOut, "description": "already uploaded"}, 413: {}, 415: {}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def upload(
    request: Request, target: Annotated[api.Target, Depends(api.Allowed((UserRole.DEPARTMENT,)))]
) -> JSONResponse:
    spool = await uploads.receive_file(request, request.app.state.blobs.scratch)
    record, new = await keep(request, target.caller, target.assignment_id, spool)
    return JSONResponse(record.model_dump(mode="json"), status_code=201 if new else 200)


async def may_read(request: Request, caller: Principal, assignment_id: str) -> None:
    """Whoever may read the assignment (access.decide): the unit, its task's lead unit, supervisors
    and verifiers of its area, auditors; anyone else 403."""
    await api.Allowed()(request, assignment_id, caller)


async def reader(request: Request, assignment_id: str, caller: Annotated[Principal, Depends(principal)]) -> str:
    await may_read(request, caller, assignment_id)
    return assignment_id


@router.get("/v1/assignments/{assignment_id}/evidence", response_model=EvidenceList, summary="Evidence files")
async def listing(request: Request, assignment_id: Annotated[str, Depends(reader)]) -> EvidenceList:
    items = await files_of(request, assignment_id)
    return EvidenceList(assignment_id=assignment_id, items=items, total=len(items))


async def files_of(request: Request, assignment_id: str) -> list[EvidenceOut]:
    """The files uploaded for an assignment, oldest first."""
    t = evidence_files.c
    async with request.app.state.engine.connect() as conn:
        q = select(evidence_files).where(t.assignment_id == assignment_id).order_by(t.uploaded_at, t.sha256)
        return [_out(r) for r in await conn.execute(q)]


def attachment(name: str) -> str:
    """Content-Disposition for a download: an ASCII name for old clients and the real one (RFC 5987)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get(
    "/v1/assignments/{assignment_id}/evidence/{sha256}",
    summary="Download an evidence file",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file's bytes"}},
)
async def download(request: Request, assignment_id: Annotated[str, Depends(reader)], sha256: SHA256) -> Any:
    return await file_response(request, assignment_id, sha256)


async def file_response(request: Request, assignment_id: str, sha256: str) -> StreamingResponse:
    """The file as an attachment, for a caller `may_read` has let through (the API and the workbench)."""
    record = await _recorded(request, assignment_id, sha256)
    if record is None:
        raise HTTPException(404, f"no evidence file {sha256[:12]}… was uploaded for {assignment_id}")
    chunks = request.app.state.blobs.chunks(sha256)
    try:
        first = await anext(chunks, b"")
    except BlobMissing as exc:
        log.error("evidence.missing_from_store", assignment_id=assignment_id, sha256=sha256)
        raise HTTPException(
            503, f"{record.name} is recorded but its content cannot be found in the evidence store; "
            "tell the operator",
        ) from exc  # fmt: skip

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    headers = {
        "Content-Disposition": attachment(record.name),
        "Content-Length": str(record.size),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600, immutable",
        "ETag": f'"{sha256}"',
    }
    return StreamingResponse(body(), media_type=record.media_type, headers=headers)


async def check_report(request: Request, assignment_id: str, command: BaseModel) -> None:
    """A report names only evidence uploaded for its assignment, with the size it was uploaded with."""
    named = list(getattr(command, "evidence", []))
    if not named:
        return
    t = evidence_files.c
    async with request.app.state.engine.connect() as conn:
        q = select(t.sha256, t.size).where(
            t.assignment_id == assignment_id, t.sha256.in_({e.sha256 for e in named})
        )  # fmt: skip
        sizes: dict[str, int] = {r.sha256: r.size for r in await conn.execute(q)}
    upload_path = f"POST /v1/assignments/{assignment_id}/evidence"
    for e in named:
        problem = None
        if e.sha256 not in sizes:
            problem = (
                f"evidence {e.name} ({e.sha256[:12]}…) was not uploaded for this assignment; "
                f"upload it first with {upload_path}"
            )
        elif sizes[e.sha256] != e.size:
            problem = f"evidence {e.name} ({e.sha256[:12]}…) was uploaded with {sizes[e.sha256]} bytes, not {e.size}"
        if problem is not None:
            log.info("request.invalid", path=request.url.path, errors=[{"field": "evidence", "message": problem}])
            raise HTTPException(422, problem)


api.COMMAND_CHECKS["report_progress"] = check_report
