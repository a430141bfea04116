"""Export bundles and their offline verification (no service, no database, no pydantic needed).

A bundle is a directory:
- ``ledger.jsonl``: one ledger entry per line, in ledger order, as served by
  ``GET /v1/audit/events`` with ``Accept: application/x-ndjson`` (``canonical`` verbatim);
- ``checkpoints.json``: ``{"items": [signed checkpoints...], "origin", "verifier_key",
  "witness_keys"}``: each checkpoint with its C2SP signed note and the witnesses' cosignatures,
  the log's verifier key and the witnesses' (an auditor compares them with keys obtained out
  of band, or passes them to ``verify``);
- ``audit-checkpoint-public.pem``: the Ed25519 key the checkpoints are signed with
  (an auditor should compare it with one obtained out of band, or pass ``--public-key``);
- ``manifest.json``: where and when it was exported, and how many entries;
- with ``--evidence``, ``evidence/<sha256>``: every evidence file named by an exported
  ProgressReported entry, fetched from the progress service, and ``evidence/manifest.json``
  (name, size, media type of each, and any the service could not give).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from services.audit.verify import ChainVerifier, Failure, StoredEntry, log_verifier
from services.shared.signed_note import COSIGNATURE_V1, NoteError, Verifier, cosignature_time, parse_vkey, split_note

LEDGER_FILE = "ledger.jsonl"
CHECKPOINTS_FILE = "checkpoints.json"
PUBLIC_KEY_FILE = "audit-checkpoint-public.pem"
MANIFEST_FILE = "manifest.json"
EVIDENCE_DIR = "evidence"


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
    witnessed: int = 0  # size of the newest checkpoint with the witness cosignatures asked for
    witnesses: tuple[str, ...] = ()  # the witnesses whose valid cosignatures it carries

    @property
    def unsigned_tail(self) -> int:
        """Entries after the latest checkpoint: chain-checked, not yet covered by a signature."""
        return max(0, self.count - self.latest_checkpoint)


def load_checkpoints(directory: Path, public_key: Path | None = None) -> tuple[list[dict[str, Any]], bytes, list[str]]:
    """The checkpoints, the log's key (PEM or verifier key) and the witnesses' verifier keys in the bundle."""
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
    if log_verifier(key) is None and b"BEGIN PUBLIC KEY" not in key:
        raise BundleError(f"{key_path} is neither a PEM public key nor a verifier key (name+keyid+base64)")
    witness_keys = data.get("witness_keys") or []
    return items, key, [k for k in witness_keys if isinstance(k, str)]


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
    witness_keys: list[str]


def open_bundle(directory: Path, public_key: Path | None = None) -> Bundle:
    """Everything a check needs, or BundleError if the bundle is unusable (before any work)."""
    if not directory.is_dir():
        raise BundleError(f"{directory} is not a directory")
    ledger_path = directory / LEDGER_FILE
    if not ledger_path.is_file():
        raise BundleError(f"{directory} is not an audit export: {LEDGER_FILE} is missing")
    checkpoints, key, witness_keys = load_checkpoints(directory, public_key)
    return Bundle(ledger_path, checkpoints, key, witness_keys)


def parse_witness_keys(keys: list[str]) -> list[Verifier]:
    out = []
    for text in keys:
        try:
            verifier = parse_vkey(text)
        except NoteError as exc:
            raise BundleError(f"witness key {text!r}: {exc}") from exc
        if verifier.key_type != COSIGNATURE_V1:
            raise BundleError(f"witness key {text!r} is not a cosignature/v1 key (type 0x04)")
        out.append(verifier)
    return out


def witnessed(checkpoints: list[dict[str, Any]], keys: list[Verifier], needed: int) -> tuple[int, tuple[str, ...]]:
    """(size, witness names) of the newest checkpoint with valid cosignatures by `needed` distinct
    witnesses among `keys` ((0, ()) when none). Only checkpoints whose own signature was checked
    are passed here, so each body is the log's."""
    for cp in sorted(checkpoints, key=lambda c: -int(c.get("size", 0))):
        if cp.get("note") is None:
            continue
        try:
            body, _ = split_note(str(cp["note"]))
        except NoteError:
            continue
        names = set()
        for cosigned in cp.get("cosignatures") or []:
            line = str(cosigned.get("line", "")) if isinstance(cosigned, dict) else ""
            names |= {k.name for k in keys if cosignature_time(body, line, k) is not None}
        if len(names) >= needed:
            return int(cp["size"]), tuple(sorted(names))
    return 0, ()


def verify_bundle(
    bundle: Bundle,
    progress: Callable[[int], None] | None = None,
    strict: bool = False,
    witnesses: int = 0,
    witness_keys: list[Verifier] | None = None,
) -> BundleResult:
    """Check every checkpoint's signature, then the chain and each checkpoint's Merkle root, and
    with `witnesses` > 0 that a checkpoint carries that many valid witness cosignatures."""
    latest = max((int(c.get("size", 0)) for c in bundle.checkpoints), default=0)
    verifier = ChainVerifier(bundle.checkpoints, bundle.public_key, strict=strict)
    keys = parse_witness_keys(bundle.witness_keys) if witness_keys is None else witness_keys
    seen = witnessed(bundle.checkpoints, keys, max(witnesses, 1)) if verifier.failure is None else (0, ())

    def result(line: int | None = None, failure: Failure | None = None) -> BundleResult:
        v = verifier
        head = v.head if v.count else None
        if failure is None:
            return BundleResult(
                True, v.count, head, v.checkpoints_checked, latest, witnessed=seen[0], witnesses=seen[1]
            )
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
    keys = {name: body.get(name) for name in ("origin", "verifier_key", "witness_keys")}
    (directory / CHECKPOINTS_FILE).write_text(
        json.dumps({"items": body["items"], **keys}, ensure_ascii=False, indent=1), encoding="utf-8"
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


def named_evidence(ledger: Path) -> dict[str, dict[str, Any]]:
    """sha256 -> name, size and assignments of every evidence file the ledger's reports name."""
    named: dict[str, dict[str, Any]] = {}
    for _, raw in read_lines(ledger):
        try:
            line = orjson.loads(raw)
            if line.get("type") != "ProgressReported":
                continue
            event = orjson.loads(line["canonical"])
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
            continue  # not this check's to judge: verify_bundle names a broken line
        for e in (event.get("payload") or {}).get("evidence") or []:
            entry = named.setdefault(e["sha256"], {"name": e["name"], "size": e["size"], "assignment_ids": []})
            aid = line.get("assignment_id") or event.get("assignment_id")
            if aid not in entry["assignment_ids"]:
                entry["assignment_ids"].append(aid)
    return named


def export_evidence(client: Any, directory: Path, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Fetch every evidence file the exported ledger names into `evidence/<sha256>`, with an
    `httpx.Client` on the progress service whose token may read them (an auditor's). A file is
    checked against its hash as it arrives; one the service does not have is listed as unavailable."""
    named = named_evidence(directory / LEDGER_FILE)
    folder = directory / EVIDENCE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    files, unavailable = [], []
    for n, (sha, entry) in enumerate(sorted(named.items()), start=1):
        media_type, reason = None, ""
        for aid in entry["assignment_ids"]:
            media_type, reason = _fetch(client, f"/v1/assignments/{aid}/evidence/{sha}", folder, sha)
            if media_type is not None:
                break
        if media_type is None:
            unavailable.append({"sha256": sha, "name": entry["name"], "reason": reason})
        else:
            files.append({"sha256": sha, "name": entry["name"], "size": entry["size"], "media_type": media_type})
        if progress is not None:
            progress(n, len(named))
    manifest = {"service": str(client.base_url), "files": files, "unavailable": unavailable}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def _fetch(client: Any, path: str, folder: Path, sha: str) -> tuple[str | None, str]:
    """(media type, "") once the file is saved; (None, why) when the service has no such file."""
    partial = folder / f"{sha}.partial"
    digest = hashlib.sha256()
    with client.stream("GET", path) as response:
        if response.status_code == 404:
            response.read()
            return None, f"the progress service has no such file ({response.status_code})"
        response.raise_for_status()
        with partial.open("wb") as out:
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    if digest.hexdigest() != sha:
        partial.unlink()
        return None, "the progress service sent bytes that do not match the hash"
    partial.replace(folder / sha)
    return str(response.headers.get("content-type", "")), ""


@dataclass(frozen=True)
class EvidenceResult:
    checked: int
    problems: list[str]  # one line per file altered or missing, naming it
    unavailable: list[str]  # files the service could not give when the bundle was exported


def verify_evidence(directory: Path) -> EvidenceResult | None:
    """Every evidence file the ledger names against its hash and size (None: exported without evidence).
    The ledger is the reference, not the evidence manifest, which is unsigned."""
    folder = directory / EVIDENCE_DIR
    if not folder.is_dir():
        return None
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    gone = {u.get("sha256"): u for u in manifest.get("unavailable", []) if isinstance(u, dict)}
    problems, unavailable, checked = [], [], 0
    for sha, entry in sorted(named_evidence(directory / LEDGER_FILE).items()):
        what = f"evidence {entry['name']} ({sha})"
        path = folder / sha
        if sha in gone and not path.exists():
            unavailable.append(f"{what}: {gone[sha].get('reason', 'not exported')}")
            continue
        try:
            digest, size = _hash_file(path)
        except OSError:
            problems.append(f"{what} is missing from the bundle")
            continue
        checked += 1
        if digest != sha:
            problems.append(f"{what} was altered: its content no longer has that hash")
        elif size != entry["size"]:
            problems.append(f"{what} is {size} bytes, the report says {entry['size']}")
    return EvidenceResult(checked, problems, unavailable)


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
