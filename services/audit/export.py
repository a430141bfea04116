"""Export bundles and their offline verification (no service, no database, no pydantic needed).

A bundle is a directory:
- ``ledger.jsonl``: one ledger entry per line, in ledger order, as served by
  ``GET /v1/audit/events`` with ``Accept: application/x-ndjson`` (``canonical`` verbatim);
- ``checkpoints.json``: ``{"items": [signed checkpoints...]}``;
- ``audit-checkpoint-public.pem``: the Ed25519 key the checkpoints are signed with
  (an auditor should compare it with one obtained out of band, or pass ``--public-key``);
- ``manifest.json``: where and when it was exported, and how many entries.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from services.audit.verify import ChainVerifier, Failure, StoredEntry

LEDGER_FILE = "ledger.jsonl"
CHECKPOINTS_FILE = "checkpoints.json"
PUBLIC_KEY_FILE = "audit-checkpoint-public.pem"
MANIFEST_FILE = "manifest.json"


class BundleError(Exception):
    """The bundle cannot be checked at all (missing or unreadable files): not evidence of tampering."""


@dataclass(frozen=True)
class BundleResult:
    ok: bool
    count: int
    head: str | None
    checkpoints_checked: int
    latest_checkpoint: int
    line: int | None = None  # 1-based line of ledger.jsonl where the ledger stops being trustworthy
    ledger_seq: int | None = None
    reason: str = ""

    @property
    def unsigned_tail(self) -> int:
        """Entries after the latest checkpoint: chain-checked, not yet covered by a signature."""
        return max(0, self.count - self.latest_checkpoint)


def load_checkpoints(directory: Path, public_key: Path | None = None) -> tuple[list[dict[str, Any]], bytes]:
    key_path = public_key or directory / PUBLIC_KEY_FILE
    try:
        key = key_path.read_bytes()
        data = json.loads((directory / CHECKPOINTS_FILE).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BundleError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except ValueError as exc:
        raise BundleError(f"{directory / CHECKPOINTS_FILE} is not JSON: {exc}") from exc
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(c, dict) for c in items):
        raise BundleError(f"{directory / CHECKPOINTS_FILE} has no list of checkpoints under 'items'")
    if b"BEGIN PUBLIC KEY" not in key:
        raise BundleError(f"{key_path} is not a PEM public key")
    return items, key


def read_lines(path: Path, progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) pairs, reporting bytes read to `progress`."""
    try:
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                if progress is not None:
                    progress(len(raw))
                yield number, raw
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Bundle:
    ledger: Path
    checkpoints: list[dict[str, Any]]
    public_key: bytes


def open_bundle(directory: Path, public_key: Path | None = None) -> Bundle:
    """Everything a check needs, or BundleError if the bundle is unusable (before any work)."""
    if not directory.is_dir():
        raise BundleError(f"{directory} is not a directory")
    ledger_path = directory / LEDGER_FILE
    if not ledger_path.is_file():
        raise BundleError(f"{directory} is not an audit export: {LEDGER_FILE} is missing")
    checkpoints, key = load_checkpoints(directory, public_key)
    return Bundle(ledger_path, checkpoints, key)


def verify_bundle(bundle: Bundle, progress: Callable[[int], None] | None = None, strict: bool = False) -> BundleResult:
    """Check every checkpoint's signature, then the chain and each checkpoint's Merkle root."""
    latest = max((int(c.get("size", 0)) for c in bundle.checkpoints), default=0)
    verifier = ChainVerifier(bundle.checkpoints, bundle.public_key, strict=strict)

    def result(line: int | None = None, failure: Failure | None = None) -> BundleResult:
        v = verifier
        head = v.head if v.count else None
        if failure is None:
            return BundleResult(True, v.count, head, v.checkpoints_checked, latest)
        return BundleResult(
            False, v.count, head, v.checkpoints_checked, latest, line, failure.ledger_seq, failure.reason
        )

    if verifier.failure is not None:
        return result(None, verifier.failure)
    last_line = 0
    for number, raw in read_lines(bundle.ledger, progress):
        last_line = number
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            line = None
        if not isinstance(line, dict):
            return result(number, Failure(verifier.count + 1, "the line is not a JSON object"))
        failure = verifier.feed(StoredEntry(*(line.get(name) for name in StoredEntry._fields)))
        if failure is not None:
            return result(number, failure)
    failure = verifier.finish()
    return result(last_line + 1, failure)


def export_bundle(
    client: Any, directory: Path, progress: Callable[[int, int | None], None] | None = None
) -> dict[str, Any]:
    """Download a bundle with an `httpx.Client` whose base URL and token are set.

    Checkpoints are fetched before the ledger, so every exported checkpoint is covered by
    the exported lines even while the ledger keeps growing. Lines are written as received.
    """
    directory.mkdir(parents=True, exist_ok=True)
    checkpoints = client.get("/v1/audit/checkpoints")
    checkpoints.raise_for_status()
    body = checkpoints.json()
    total = client.get("/v1/audit/events", params={"limit": 1})
    total.raise_for_status()
    expected = int(total.json()["total"])
    count = 0
    partial = directory / (LEDGER_FILE + ".partial")
    ndjson = {"Accept": "application/x-ndjson"}
    with partial.open("wb") as out, client.stream("GET", "/v1/audit/events", headers=ndjson) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            out.write(line.encode("utf-8") + b"\n")
            count += 1
            if progress is not None:
                progress(count, expected)
    partial.replace(directory / LEDGER_FILE)  # a broken download never looks like a complete ledger
    (directory / CHECKPOINTS_FILE).write_text(
        json.dumps({"items": body["items"]}, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    (directory / PUBLIC_KEY_FILE).write_text(body["public_key_pem"], encoding="ascii")
    manifest = {
        "service": str(client.base_url),
        "exported_at": _now(),
        "entries": count,
        "checkpoints": len(body["items"]),
        "latest_checkpoint": max((int(c["size"]) for c in body["items"]), default=0),
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
