"""Evidence kinds told by content: documents and pictures accepted, anything else refused."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from services.progress import filetypes
from services.progress.filetypes import MSI_CLSIDS, OLE_MAGIC, detect


def kind(data: bytes) -> str | None:
    found = detect(io.BytesIO(data))
    return found.media_type if found is not None else None


def zipped(*names: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in names:
            z.writestr(name, b"<x/>")
    return out.getvalue()


def compound(stream: str, clsid: bytes = bytes(16)) -> bytes:
    """A compound file (OLE) with 512-byte sectors whose directory starts in sector 0."""
    header = bytearray(512)
    header[:8] = OLE_MAGIC
    struct.pack_into("<H", header, 0x1E, 9)
    struct.pack_into("<I", header, 0x30, 0)
    directory = bytearray(512)
    for i, (name, cls) in enumerate((("Root Entry", clsid), (stream, bytes(16)))):
        entry = name.encode("utf-16-le") + b"\x00\x00"
        directory[i * 128 : i * 128 + len(entry)] = entry
        struct.pack_into("<H", directory, i * 128 + 0x40, len(entry))
        directory[i * 128 + 0x50 : i * 128 + 0x60] = cls
    return bytes(header + directory)


BMP = b"BM" + struct.pack("<IHHI", 70, 0, 0, 54) + struct.pack("<I", 40) + bytes(48)


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (BMP, "image/bmp"),
        (zipped("[Content_Types].xml", "word/document.xml"), filetypes.OOXML["word/"][0]),
        (zipped("[Content_Types].xml", "xl/workbook.xml"), filetypes.OOXML["xl/"][0]),
        (zipped("[Content_Types].xml", "ppt/presentation.xml"), filetypes.OOXML["ppt/"][0]),
        (zipped("OFD.xml", "Doc_0/Document.xml"), "application/ofd"),
        (zipped("统计表.csv", "照片/1.jpg"), "application/zip"),
        (compound("WordDocument"), "application/msword"),
        (compound("Workbook"), "application/vnd.ms-excel"),
        (compound("PowerPoint Document"), "application/vnd.ms-powerpoint"),
        (compound("WpsCustomData"), "application/x-ole-storage"),
    ],
)
def test_accepted_kinds(data: bytes, media_type: str) -> None:
    assert kind(data) == media_type


@pytest.mark.parametrize(
    "data",
    [
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(100),  # a Windows program
        b"\x7fELF\x02\x01\x01" + bytes(100),  # a Linux program
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"<svg onload=alert(1)>",
        b"<!DOCTYPE html><html><body>hi</body></html>",
        b"#!/bin/sh\nrm -rf /\n",
        b"BMW annual report, plain text",
        b"PK\x03\x04 not really a zip",
        b"",
        compound("Root", clsid=next(iter(MSI_CLSIDS))),  # a Windows Installer package
    ],
)
def test_refused_kinds(data: bytes) -> None:
    assert kind(data) is None


def test_a_word_document_zip_without_content_types_is_a_plain_zip() -> None:
    """The entries decide, not a name: word/ alone is not an Office document."""
    assert kind(zipped("word/document.xml")) == "application/zip"
