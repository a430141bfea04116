"""An uploaded file, streamed from a multipart request (or a form already parsed) to a spool file in
the evidence store's scratch directory, hashed and counted as it arrives: never held in memory, and
refused the moment it passes the limit."""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

from fastapi import HTTPException, Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import UploadFile

from contracts import text

MIB = 1024 * 1024
MAX_FILE_BYTES = 20 * MIB
CHUNK = 256 * 1024


def _too_large(name: str) -> HTTPException:
    return HTTPException(
        413, f"{name} is larger than {MAX_FILE_BYTES // MIB} MiB, the most one evidence file may be; "
        "split it or reduce it (scan at a lower resolution, compress the pictures) and upload it again",
    )  # fmt: skip


@dataclass
class Spool:
    """An upload written to a temporary file in the store's scratch directory as it arrives, hashed
    and counted on the way (never held in memory)."""

    scratch: Path
    name: str
    file: IO[bytes] = field(init=False)
    digest: Any = field(default_factory=hashlib.sha256)
    size: int = 0

    def __post_init__(self) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.file = tempfile.NamedTemporaryFile(dir=self.scratch, prefix="upload-", delete=False)  # noqa: SIM115

    @property
    def path(self) -> Path:
        return Path(self.file.name)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_FILE_BYTES:
            raise _too_large(self.name)
        self.digest.update(data)
        self.file.write(data)

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def clean_name(raw: str) -> str:
    """The file's own name, without a browser's path; one with a bidi override or a control
    character in it (报告, U+202E, 0fdp.exe shows as 报告exe.pdf0) is refused."""
    name = re.split(r"[\\/]", raw)[-1].strip()
    found = text.hidden_in(name)
    if found:
        raise HTTPException(422, f"file name {text.refusal(found)}")
    name = "".join(c for c in name if c.isprintable())  # zero-width and other format characters
    return name[:300] or "evidence"


def _part_filename(header: bytes) -> tuple[str, str | None]:
    """(field name, file name or None) of a part's Content-Disposition; `filename*` (RFC 5987) wins."""
    _, params = parse_options_header(header)
    field_name = params.get(b"name", b"").decode("utf-8", "replace")
    star = re.search(rb"filename\*\s*=\s*([\w-]+)'[^']*'([^;\s]+)", header)
    if star:
        return field_name, unquote(star.group(2).decode("ascii", "replace"), encoding="utf-8", errors="replace")
    plain = params.get(b"filename")
    if plain is None:
        return field_name, None
    return field_name, plain.decode("utf-8", "replace").replace("%22", '"')


class _Form:
    """Callbacks for python-multipart's streaming parser: the first part named `file` goes to a Spool."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.spool: Spool | None = None
        self.current: Spool | None = None
        self.complete = False
        self._field, self._value, self._headers = b"", b"", dict[bytes, bytes]()

    def callbacks(self) -> Any:
        def header_field(data: bytes, start: int, end: int) -> None:
            self._field += data[start:end]

        def header_value(data: bytes, start: int, end: int) -> None:
            self._value += data[start:end]

        def header_end() -> None:
            self._headers[self._field.lower()] = self._value
            self._field, self._value = b"", b""

        def headers_finished() -> None:
            field_name, filename = _part_filename(self._headers.get(b"content-disposition", b""))
            self._headers = {}
            if field_name == "file" and filename is not None and self.spool is None:
                self.spool = self.current = Spool(self.scratch, clean_name(filename))

        def part_data(data: bytes, start: int, end: int) -> None:
            if self.current is not None:
                self.current.write(data[start:end])

        def part_end() -> None:
            if self.current is not None:
                self.current.file.close()
                self.complete = True
            self.current = None

        return {
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_headers_finished": headers_finished,
            "on_part_data": part_data,
            "on_part_end": part_end,
        }


async def receive_file(request: Request, scratch: Path) -> Spool:
    """The multipart field `file`, streamed to a spool file while it is hashed and counted."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise HTTPException(422, "send the file as multipart/form-data, in a field named file")
    form = _Form(scratch)
    parser = MultipartParser(params[b"boundary"], callbacks=form.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        _discard(form.spool)
        raise HTTPException(422, "the upload is not a complete multipart form; send the file again") from exc
    except BaseException:
        _discard(form.spool)
        raise
    if form.spool is None or not form.complete:
        _discard(form.spool)
        raise HTTPException(422, "no file was sent: send it in a multipart field named file, with its file name")
    return form.spool


def _discard(spool: Spool | None) -> None:
    if spool is not None:
        spool.discard()


async def spool_upload(scratch: Path, upload: UploadFile) -> Spool:
    """A file a form has already parsed (the workbench's report form), spooled like an API upload."""
    spool = Spool(scratch, clean_name(upload.filename or ""))
    try:
        while chunk := await upload.read(CHUNK):
            spool.write(chunk)
        spool.file.close()
    except BaseException:
        spool.discard()
        raise
    return spool
