"""The workbench's evidence (佐证材料): files sent with a report form, listed and opened from pages.

The files are kept and served by services/progress/evidence.py, as the API's uploads are; this
says it in the pages' words.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from services.progress import evidence
from services.shared.auth import Principal

# A report form may carry several files, each within evidence.MAX_FILE_BYTES.
MAX_FILES = 10
FORM_PATH = r"/workbench/assignments/[^/]+/report_progress"
MAX_FORM_BODY = MAX_FILES * evidence.MAX_FILE_BYTES + 1024 * 1024
TOO_LARGE_FORM = (
    f"一次填报所附的佐证材料合计不能超过 {MAX_FILES * evidence.MAX_FILE_BYTES // evidence.MIB} MB，请分次填报 / "
    "the files of one report together are too large"
)


async def listing(request: Request, assignment_id: str) -> list[dict[str, Any]]:
    return [e.model_dump() for e in await evidence.files_of(request, assignment_id)]


async def store_all(
    request: Request, who: Principal, assignment_id: str, files: list[UploadFile]
) -> tuple[list[dict[str, Any]], str]:
    """Each file kept for the assignment; the report's evidence list, or why a file was refused."""
    if len(files) > MAX_FILES:
        return [], f"一次最多附 {MAX_FILES} 个文件"
    kept = []
    for upload in files:
        try:
            out, _ = await evidence.store_upload(request, who, assignment_id, upload)
        except HTTPException as exc:
            return [], f"{upload.filename}：{_words(exc)}"
        kept.append({"name": out.name, "sha256": out.sha256, "size": out.size})
    return kept, ""


def _words(exc: HTTPException) -> str:
    if exc.status_code == 413:
        return f"文件超过 {evidence.MAX_FILE_BYTES // evidence.MIB} MB，请压缩或拆分后上传"
    if exc.status_code == 415:
        return "文件类型不支持；可上传 PDF、图片、Word/Excel/PowerPoint（含 WPS 旧格式）、OFD 或 zip"
    return f"未能保存（{exc.detail}）"


async def download(request: Request, who: Principal, assignment_id: str, sha256: str) -> Response:
    """The file, for whoever may read the assignment's evidence (the same rule as the API's)."""
    try:
        await evidence.may_read(request, who, assignment_id)
        return await evidence.file_response(request, assignment_id, sha256)
    except HTTPException as exc:
        message = "没有这个佐证材料。" if exc.status_code == 404 else f"无法打开这个佐证材料：{exc.detail}"
        return Response(message, status_code=exc.status_code, media_type="text/plain; charset=utf-8")
