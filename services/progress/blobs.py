"""Where evidence files are kept, by their SHA-256: a directory (the embedded default) or an
S3-compatible bucket. A file is written once, whichever assignments name it, and never changed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

CHUNK = 256 * 1024


class BlobMissing(Exception):
    """No file under that hash in the store."""


class BlobStore(Protocol):
    # Uploads are spooled here while they are hashed and checked; a local store renames them in.
    scratch: Path

    async def has(self, sha256: str) -> bool: ...

    async def put(self, sha256: str, spooled: Path) -> None:
        """Keep the spooled file under its hash (it is consumed: moved or deleted)."""

    def chunks(self, sha256: str) -> AsyncIterator[bytes]: ...


class LocalBlobs:
    """Files under `root/<first two hex digits>/<sha256>`, each written to a temporary name,
    flushed to disk and renamed, so a crash leaves a whole file or none."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scratch = root / "incoming"
        self.scratch.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def put(self, sha256: str, spooled: Path) -> None:
        await asyncio.to_thread(self._put, sha256, spooled)

    def _put(self, sha256: str, spooled: Path) -> None:
        target = self.path(sha256)
        if target.is_file():
            spooled.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with spooled.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(spooled, target)  # the spool is on the same file system: an atomic rename
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a power cut
        finally:
            os.close(fd)

    async def chunks(self, sha256: str) -> AsyncIterator[bytes]:
        try:
            f = await asyncio.to_thread(self.path(sha256).open, "rb")
        except FileNotFoundError as exc:
            raise BlobMissing(sha256) from exc
        try:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                yield chunk
        finally:
            f.close()


class S3Blobs:
    """Objects `<prefix><sha256>` in a bucket of an S3-compatible store (boto3, off the event loop).

    Credentials and region come from the usual AWS variables (AWS_ACCESS_KEY_ID, ...)."""

    def __init__(self, bucket: str, endpoint_url: str | None, prefix: str, scratch: Path) -> None:
        import boto3  # only a deployment that stores evidence in S3 loads it

        self.bucket, self.prefix = bucket, prefix
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url)
        self.scratch = scratch
        self.scratch.mkdir(parents=True, exist_ok=True)

    def key(self, sha256: str) -> str:
        return f"{self.prefix}{sha256}"

    async def has(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def put(self, sha256: str, spooled: Path) -> None:
        try:
            if not await self.has(sha256):
                await asyncio.to_thread(self.client.upload_file, str(spooled), self.bucket, self.key(sha256))
        finally:
            spooled.unlink(missing_ok=True)

    async def chunks(self, sha256: str) -> AsyncIterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            answer = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BlobMissing(sha256) from exc
            raise
        body = answer["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK):
                yield chunk
        finally:
            body.close()


def blob_store(evidence_dir: Path, s3_bucket: str | None, s3_endpoint_url: str | None, s3_prefix: str) -> BlobStore:
    if s3_bucket:
        return S3Blobs(s3_bucket, s3_endpoint_url, s3_prefix, evidence_dir / "incoming")
    return LocalBlobs(evidence_dir)
