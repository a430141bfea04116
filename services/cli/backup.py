"""`policyflow admin backup DIR` and `policyflow admin restore DIR`: the whole state, while it runs.

A backup takes its parts in a fixed order, so that each part holds no more than the ones after it:

1. the service databases (audit ledger, progress read model, assignment inbox, notifier),
2. the event stream (the source of truth) and Temporal's database, both inside one short pause of
   publishing (the stream refuses new messages; the publishing activities retry), so they agree,
3. the evidence files, then the keys (kept apart under `secret/`, owner-only).

A restore therefore reconciles by itself when the stack starts on it: each reader (ledger, read
models, inbox, notifier) resumes from its own stored position, which is never past the stream's
end, and reads what came after; a workflow whose publish was refused during the pause publishes
again (the same `Nats-Msg-Id`: if the saved stream already has it, its duplicate window drops it);
the ledger re-verifies as one chain; an evidence file named by a saved event is always saved
(uploads come before the command that names them). Commands keep being taken during the pause;
their events are published when it ends.

`manifest.json` lists every file with its SHA-256 and size; a restore checks all of them before it
writes anything, and refuses a target that is not empty.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from contracts.access_log import ACCESS_STREAM
from contracts.subjects import EVENT_STREAM, EVENT_SUBJECTS
from services.cli import backup_parts as parts
from services.cli.backup_parts import BackupError
from services.cli.backup_place import SERVICES, Place
from services.shared.revocations import REVOKED_BUCKET

FORMAT = "policyflow-backup/1"
# Saved after the databases, without a pause: each is only appended to, and the audit database's
# position in the access stream is then never past the saved stream's end.
OTHER_STREAMS = (ACCESS_STREAM, f"KV_{REVOKED_BUCKET}")  # the access log; the disabled accounts
MANIFEST = "manifest.json"


@dataclass
class Manifest:
    created_at: str
    files: list[dict[str, Any]] = field(default_factory=list)
    parts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, root: Path, path: Path, part: str, secret: bool = False) -> None:
        self.files.append(
            {
                "path": path.relative_to(root).as_posix(),
                "sha256": parts.sha256_of(path),
                "size": path.stat().st_size,
                "part": part,
                "secret": secret,
            }
        )

    def dump(self) -> dict[str, Any]:
        order = ["databases", "temporal", "stream", "evidence", "keys"]
        return {"format": FORMAT, "created_at": self.created_at, "order": order, "parts": self.parts,
                "notes": self.notes, "files": self.files}  # fmt: skip


class Steps:
    """One progress line per part (rich, on stderr); silent when asked to be."""

    def __init__(self, quiet: bool) -> None:
        columns = (TextColumn("{task.description:<28}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
        self.bar = Progress(*columns, console=Console(stderr=True), disable=quiet)

    def __enter__(self) -> Steps:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    @contextmanager
    def step(self, what: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        task = self.bar.add_task(what, total=total)
        yield lambda n: self.bar.advance(task, n)
        done = self.bar.tasks[task].completed
        self.bar.update(task, total=max(done, total or 0, 1), completed=max(done, total or 0, 1))


def _empty(directory: Path) -> bool:
    return not directory.exists() or (directory.is_dir() and not any(directory.iterdir()))


def _tree(root: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] not in skip)


# ---- backup ------------------------------------------------------------------------------------------


def make_backup(place: Place, target: Path, quiet: bool = False) -> dict[str, Any]:
    if not _empty(target):
        raise BackupError(f"{target} is not empty: a backup goes into a new or empty directory")
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o700)
    manifest = Manifest(dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    with Steps(quiet) as steps:
        _backup_databases(place, target, manifest, steps)
        asyncio.run(_backup_stream_and_temporal(place, target, manifest, steps))
        _backup_evidence(place, target, manifest, steps)
        _backup_keys(place, target, manifest, steps)
    data = manifest.dump()
    (target / MANIFEST).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return data


def _backup_databases(place: Place, target: Path, manifest: Manifest, steps: Steps) -> None:
    dumped: dict[str, str] = {}  # a PostgreSQL database shared by several services is dumped once
    for name in SERVICES:
        url = place.databases[name]
        path = parts.sqlite_path(url)
        if path is None:
            if url not in dumped:
                saved = target / "databases" / f"{name}.pgdump"
                with steps.step(f"database {name} (pg_dump)"):
                    parts.pg_dump(url, saved)
                manifest.add(target, saved, "databases")
                dumped[url] = saved.relative_to(target).as_posix()
            manifest.parts[f"database:{name}"] = {
                "kind": "postgresql",
                "file": dumped[url],
                "url": parts.printable(url),
            }
        elif not path.is_file():
            manifest.parts[f"database:{name}"] = {"kind": "absent"}
            manifest.notes.append(f"{name}: no database at {path} (the service never ran); it starts empty")
        else:
            saved = target / "databases" / f"{name}.sqlite"
            with steps.step(f"database {name}", path.stat().st_size) as advance:
                parts.sqlite_backup(path, saved)
                parts.sqlite_check(saved)
                advance(saved.stat().st_size)
            manifest.add(target, saved, "databases")
            manifest.parts[f"database:{name}"] = {"kind": "sqlite", "file": saved.relative_to(target).as_posix()}


def _backup_temporal(place: Place, target: Path, manifest: Manifest, steps: Steps) -> None:
    if place.temporal_external:
        manifest.parts["temporal"] = {"kind": "external"}
        manifest.notes.append("Temporal is an external server: back it up with its own procedure (docs/deploy.md)")
        return
    if not place.temporal_db.is_file():
        raise BackupError(f"no Temporal database at {place.temporal_db}: is this the stack's var directory?")
    saved = target / "temporal" / "temporal.sqlite"
    with steps.step("Temporal", place.temporal_db.stat().st_size) as advance:
        parts.sqlite_backup(place.temporal_db, saved)
        advance(saved.stat().st_size)
    manifest.add(target, saved, "temporal")
    manifest.parts["temporal"] = {"kind": "sqlite", "file": "temporal/temporal.sqlite"}


async def _backup_stream_and_temporal(place: Place, target: Path, manifest: Manifest, steps: Steps) -> None:
    """The stream and Temporal inside one short pause of publishing: every saved event was decided
    by a saved workflow, and every publish a saved workflow saw done is in the saved stream. (An
    event id is the assignment and its sequence: a stream ahead of Temporal would hold ids that the
    restored workflows give to other events, which the stream would then drop as duplicates.)"""
    if place.nats_url is None and not (place.var_dir / "nats" / "passwords.env").is_file():
        raise BackupError(f"no embedded NATS under {place.var_dir / 'nats'}: set NATS_URL to the server to back up")
    url = place.nats_url or place.embedded_nats_url(place.nats_port)
    try:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3, allow_reconnect=True)
    except Exception as exc:
        raise BackupError(f"cannot reach NATS to save the event stream: {exc or type(exc).__name__}") from exc
    try:
        if await parts.resume_publishing(nc, EVENT_STREAM):
            manifest.notes.append("a pause left by an earlier, interrupted backup was lifted first")
        with steps.step("checking the event stream"):
            if bad := await parts.unreadable_messages(nc, EVENT_STREAM, EVENT_SUBJECTS):
                raise BackupError(
                    f"stream {EVENT_STREAM}: message(s) {', '.join(map(str, bad[:10]))} cannot be read "
                    "(nats-server skips a message whose checksum fails): its store is damaged"
                )
        data = target / "stream" / f"{EVENT_STREAM}.tar.s2"
        meta = target / "stream" / f"{EVENT_STREAM}.json"
        data.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        paused_at = dt.datetime.now(dt.UTC).isoformat()
        config = await parts.pause_publishing(nc, EVENT_STREAM)
        try:
            with steps.step(f"event stream {EVENT_STREAM}") as advance:
                saved = await parts.snapshot_stream(nc, EVENT_STREAM, config, data, meta, advance)
            await asyncio.to_thread(_backup_temporal, place, target, manifest, steps)
        finally:
            await parts.resume_publishing(nc, EVENT_STREAM, config)
        paused_s = round(time.monotonic() - t0, 2)
        await _backup_other_streams(nc, target, manifest, steps)
    finally:
        await nc.close()
    manifest.add(target, data, "stream")
    manifest.add(target, meta, "stream")
    state = saved["state"]
    manifest.parts["stream"] = {"name": EVENT_STREAM, "first_seq": state.get("first_seq"),
                                "last_seq": state.get("last_seq"), "messages": state.get("messages"),
                                "paused_at": paused_at, "publishing_paused_s": paused_s}  # fmt: skip


async def _backup_other_streams(nc: NatsClient, target: Path, manifest: Manifest, steps: Steps) -> None:
    saved_streams: list[dict[str, Any]] = []
    for name in OTHER_STREAMS:
        if not await parts.stream_exists(nc, name):
            manifest.notes.append(f"stream {name}: not on the server yet, nothing to save")
            continue
        data, meta = target / "stream" / f"{name}.tar.s2", target / "stream" / f"{name}.json"
        config = (await nc.jetstream().stream_info(name)).config
        with steps.step(f"stream {name}") as advance:
            state = (await parts.snapshot_stream(nc, name, config, data, meta, advance))["state"]
        manifest.add(target, data, "stream")
        manifest.add(target, meta, "stream")
        saved_streams.append({"name": name, "last_seq": state.get("last_seq"), "messages": state.get("messages")})
    manifest.parts["other_streams"] = saved_streams


def _backup_evidence(place: Place, target: Path, manifest: Manifest, steps: Steps) -> None:
    if place.evidence_dir is None:
        manifest.parts["evidence"] = {"kind": "s3"}
        manifest.notes.append("evidence files are in an S3 bucket: keep its versioning or replication (docs/deploy.md)")
        return
    files = _tree(place.evidence_dir, skip=("incoming",)) if place.evidence_dir.is_dir() else []
    with steps.step("evidence files", sum(f.stat().st_size for f in files)) as advance:
        for source in files:
            saved = target / "evidence" / source.relative_to(place.evidence_dir)
            saved.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, saved)  # written once under its hash and never changed
            manifest.add(target, saved, "evidence")
            advance(saved.stat().st_size)
    manifest.parts["evidence"] = {"kind": "files", "count": len(files)}


def _backup_keys(place: Place, target: Path, manifest: Manifest, steps: Steps) -> None:
    keys = _tree(place.key_dir) if place.key_dir.is_dir() else []
    secret = target / "secret"
    secret.mkdir(mode=0o700, exist_ok=True)
    (secret / "README").write_text(
        "SECRET: the signing keys of this policyflow installation (tokens, audit checkpoints).\n"
        "Keep this directory apart from the rest of the backup, readable by its owner only.\n"
    )
    with steps.step("keys (secret)", len(keys)) as advance:
        for source in keys:
            saved = secret / "keys" / source.relative_to(place.key_dir)
            saved.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copyfile(source, saved)
            saved.chmod(0o600)
            manifest.add(target, saved, "keys", secret=True)
            advance(1)
    manifest.parts["keys"] = {"count": len(keys), "secret": True}


# ---- restore -----------------------------------------------------------------------------------------


def check_backup(source: Path) -> dict[str, Any]:
    """The manifest, after every file it names was found with its hash and size; else BackupError."""
    path = source / MANIFEST
    if not path.is_file():
        raise BackupError(f"{source} has no {MANIFEST}: not a policyflow backup")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except ValueError as exc:
        raise BackupError(f"{path}: not readable JSON ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: format {manifest.get('format')!r}, this version reads {FORMAT!r}")
    for entry in manifest["files"]:
        file = source / entry["path"]
        if not file.is_file():
            raise BackupError(f"backup file {entry['path']} is missing: nothing was restored")
        if file.stat().st_size != entry["size"] or parts.sha256_of(file) != entry["sha256"]:
            raise BackupError(
                f"backup file {entry['path']} does not match its SHA-256 in the manifest "
                "(damaged or altered): nothing was restored"
            )
    return manifest


def restore_backup(source: Path, place: Place, quiet: bool = False) -> dict[str, Any]:
    manifest = check_backup(source)
    if not _empty(place.var_dir):
        raise BackupError(f"{place.var_dir} is not empty: a restore goes onto an empty var directory")
    for name in SERVICES:
        if manifest["parts"].get(f"database:{name}", {}).get("kind") == "postgresql":
            url = place.databases[name]
            if parts.sqlite_path(url) is not None:
                raise BackupError(f"{name}: the backup holds a PostgreSQL dump; set {name.upper()}_DATABASE_URL")
            if tables := parts.pg_tables(url):
                raise BackupError(
                    f"{parts.printable(url)} is not empty ({len(tables)} tables): restore into an empty database"
                )
    place.var_dir.mkdir(parents=True, exist_ok=True)
    with Steps(quiet) as steps:
        _restore_files(source, place, manifest, steps)
        others = [str(o["name"]) for o in manifest["parts"].get("other_streams", [])]
        state = asyncio.run(_restore_stream(source, place, others, steps))
    return {"restored": str(place.var_dir), "stream": state, "notes": manifest.get("notes", [])}


def _restore_files(source: Path, place: Place, manifest: dict[str, Any], steps: Steps) -> None:
    restored: set[str] = set()
    for name in SERVICES:
        part = manifest["parts"].get(f"database:{name}", {"kind": "absent"})
        url = place.databases[name]
        if part["kind"] == "sqlite":
            target = parts.sqlite_path(url)
            if target is None:
                raise BackupError(f"{name}: the backup holds a SQLite database; unset {name.upper()}_DATABASE_URL")
            with steps.step(f"database {name}"):
                parts.restore_sqlite(source / part["file"], target)
        elif part["kind"] == "postgresql" and url not in restored:
            with steps.step(f"database {name} (pg_restore)"):
                parts.pg_restore(source / part["file"], url)
            restored.add(url)
    if manifest["parts"].get("temporal", {}).get("kind") == "sqlite":
        with steps.step("Temporal"):
            parts.restore_sqlite(source / "temporal" / "temporal.sqlite", place.temporal_db)
    entries = manifest["files"]
    if place.evidence_dir is not None:
        evidence = [e for e in entries if e["part"] == "evidence"]
        with steps.step("evidence files", sum(e["size"] for e in evidence)) as advance:
            for e in evidence:
                target = place.evidence_dir / Path(e["path"]).relative_to("evidence")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / e["path"], target)
                advance(e["size"])
    place.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with steps.step("keys (secret)"):
        for e in (e for e in entries if e["part"] == "keys"):
            target = place.key_dir / Path(e["path"]).relative_to("secret/keys")
            shutil.copyfile(source / e["path"], target)
            public = target.name.endswith("public.pem")
            target.chmod(stat.S_IRUSR | stat.S_IWUSR | (stat.S_IRGRP | stat.S_IROTH if public else 0))


async def _restore_stream(source: Path, place: Place, others: list[str], steps: Steps) -> dict[str, Any]:
    """The event stream, then the other streams saved; returns the event stream's state."""
    streams = [(name, source / "stream" / f"{name}.tar.s2", source / "stream" / f"{name}.json")
               for name in (EVENT_STREAM, *others)]  # fmt: skip
    if place.nats_url is not None:
        return await _restore_stream_into(place.nats_url, streams, steps)
    from deploy.local.servers import free_port, nats_server

    # The embedded server, started on the restored var directory only for as long as the restore takes.
    server = nats_server(place.var_dir / "nats", port=free_port(), auth=True)
    await asyncio.to_thread(server.start)
    try:
        return await _restore_stream_into(place.embedded_nats_url(server.port), streams, steps)
    finally:
        await asyncio.to_thread(server.stop)


async def _restore_stream_into(url: str, streams: list[tuple[str, Path, Path]], steps: Steps) -> dict[str, Any]:
    try:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    except Exception as exc:
        raise BackupError(f"cannot reach NATS to restore the event stream: {exc or type(exc).__name__}") from exc
    try:
        for name, _, _ in streams:
            if await parts.stream_exists(nc, name):
                raise BackupError(f"NATS already has a stream {name}: restore into a server without it")
        states = []
        for name, data, meta in streams:
            with steps.step(f"stream {name}", data.stat().st_size) as advance:
                states.append(await parts.restore_stream(nc, data, meta, advance))
        return states[0]
    finally:
        await nc.close()
