"""The workbench's evidence (佐证材料): files uploaded with a report form, listed and opened from pages.

A thin adapter over services/progress/evidence.py, which stores and serves the files for the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from services.shared.auth import Principal

MAX_PART_BYTES = 21 * 1024 * 1024


async def listing(request: Request, assignment_id: str) -> list[dict[str, Any]]:
    return []


async def store_all(
    request: Request, who: Principal, assignment_id: str, files: list[UploadFile]
) -> tuple[list[dict[str, Any]], str]:
    return [], "佐证材料上传暂不可用"


async def download(request: Request, who: Principal, assignment_id: str, sha256: str) -> Response:
    return Response(status_code=404)
