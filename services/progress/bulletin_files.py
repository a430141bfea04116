"""The bulletin as a file: `GET /v1/programmes/{programme_id}/bulletins/{period}`, a PDF (WeasyPrint,
services/progress/bulletin.py) or a .docx (services/progress/bulletin_docx.py) of one `Bulletin`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from contracts.bulletin import PERIOD_WORDS
from services.progress import outcomes
from services.progress.bulletin import DOCX_TYPE, PDF_TYPE, Bulletin, gather, page, pdf_bytes, period_of
from services.progress.bulletin_docx import docx_bytes
from services.progress.status_routes import readable_unit
from services.shared import access
from services.shared.auth import Principal
from services.shared.web import principal, require_programme

router = APIRouter()
MEDIA = {"pdf": PDF_TYPE, "docx": DOCX_TYPE}
BulletinKind = Literal["pdf", "docx"]


async def rendered(b: Bulletin, kind: BulletinKind) -> bytes:
    """The file; rendering takes a second or so of CPU, so it runs beside the event loop."""
    if kind == "docx":
        return await asyncio.to_thread(docx_bytes, b)
    return await asyncio.to_thread(pdf_bytes, page(b))


def wanted(request: Request, format: BulletinKind | None) -> BulletinKind:
    if format is not None:
        return format
    return "docx" if DOCX_TYPE in request.headers.get("accept", "").lower() else "pdf"


def respond(b: Bulletin, kind: BulletinKind, body: bytes) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{b.stem}.{kind}"'}
    return Response(body, media_type=MEDIA[kind], headers=headers)


@router.get(
    "/v1/programmes/{programme_id}/bulletins/{period}",
    tags=["outcomes"],
    response_class=Response,
    responses={200: {"content": {PDF_TYPE: {}, DOCX_TYPE: {}}, "description": "the bulletin as a file"}},
)
async def bulletin(
    request: Request,
    programme_id: outcomes.ProgrammeId,
    period: Annotated[str, Path(max_length=16, description=PERIOD_WORDS)],
    caller: Principal = Depends(principal),
    unit_id: str | None = Query(default=None, max_length=64),
    format: BulletinKind | None = Query(default=None, description="pdf (default) or docx; or the Accept header"),
) -> Response:
    """The 督查通报 for a quarter (`2026-Q4`) or a year (`2026`): the period's figures, progress per
    task group, units with red and yellow escalations, the best and lowest 考核 scores, in a period in
    which the calendar opened a five-year evaluation each unit's self-evaluation and evaluation score,
    indicator progress with charts and the overdue items, as of the period's end (or now, while it runs).
    A department gets its own unit's, a scoped supervisor its area's (the city-wide indicator values
    and score ranks stay city-wide)."""
    unit_id = readable_unit(caller, unit_id)
    require_programme(caller, programme_id)
    chosen = period_of(period)
    kind = wanted(request, format)
    b = await gather(request, programme_id, chosen, unit_id, access.area(caller))
    return respond(b, kind, await rendered(b, kind))
