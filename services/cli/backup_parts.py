"""The pieces a backup is made of, each copied consistently while the stack runs.

- A SQLite database (a service's, Temporal's): SQLite's online backup API in one step, which reads
  one snapshot of the database while writers go on (WAL), never a copy of a file being written.
- A PostgreSQL database: `pg_dump --format=custom` (one repeatable-read snapshot of every table);
  restored with `pg_restore` into an empty database.
- The JetStream event stream: the server's snapshot API (`$JS.API.STREAM.SNAPSHOT`, an s2 tar
  of the stream's store, checked message by message first), restored with `$JS.API.STREAM.RESTORE`
  so every message keeps its sequence, time and `Nats-Msg-Id` (the duplicate window survives).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js.api import DiscardPolicy, StreamConfig
from sqlalchemy.engine.url import make_url

CHUNK = 128 * 1024
Advance = Callable[[int], None]  # bytes done since the last call


class BackupError(Exception):
    """A part could not be saved or brought back; the message says which and why."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


# ---- SQLite ----------------------------------------------------------------------------------------


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (any driver spelling); None for another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def sqlite_backup(source: Path, target: Path) -> None:
    """Copy a live SQLite database with the online backup API, all pages in one step: one read
    transaction, so one consistent state, while the service keeps writing to its WAL."""
    if not source.is_file():
        raise BackupError(f"{source}: no such database file")
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{source}: SQLite backup failed: {exc}") from exc
    finally:
        src.close()
    fsync_file(target)


def sqlite_check(path: Path) -> None:
    """`PRAGMA integrity_check` on a saved copy: a backup that SQLite cannot read is no backup."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    if verdict != "ok":
        raise BackupError(f"{path.name}: SQLite integrity check failed: {verdict}")


def restore_sqlite(saved: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(saved, target)
    fsync_file(target)


# ---- PostgreSQL ------------------------------------------------------------------------------------


def libpq_dsn(url: str) -> str:
    """The plain `postgresql://` form pg_dump and pg_restore take (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def printable(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _run(argv: list[str], what: str) -> None:
    found = shutil.which(argv[0])
    if found is None:
        raise BackupError(f"{what}: {argv[0]} is not installed (Debian: apt-get install postgresql-client)")
    done = subprocess.run([found, *argv[1:]], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{what}: {argv[0]} failed: {done.stderr.strip()[:500]}")


def pg_dump(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target), libpq_dsn(url)], printable(url))
    fsync_file(target)


def pg_tables(url: str) -> list[str]:
    """The tables of the database's public schema (a restore refuses a database that has any)."""
    found = shutil.which("psql")
    if found is None:
        raise BackupError("psql is not installed (Debian: apt-get install postgresql-client)")
    sql = "select tablename from pg_tables where schemaname = 'public' order by 1"
    done = subprocess.run(
        [found, "--no-psqlrc", "--tuples-only", "--no-align", "--command", sql, libpq_dsn(url)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"{printable(url)}: cannot list its tables: {done.stderr.strip()[:300]}")
    return [line for line in done.stdout.splitlines() if line.strip()]


def pg_restore(saved: Path, url: str) -> None:
    _run(
        ["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction", "--dbname", libpq_dsn(url), str(saved)],
        printable(url),
    )


# ---- the JetStream stream ----------------------------------------------------------------------------


async def _api(nc: NatsClient, subject: str, body: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    reply = await nc.request(subject, json.dumps(body).encode(), timeout=timeout)
    answer: dict[str, Any] = json.loads(reply.data)
    if "error" in answer:
        error = answer["error"]
        raise BackupError(f"{subject}: {error.get('description', error)} (code {error.get('code')})")
    return answer


PAUSE_MARK = "policyflow-backup-pause"


async def pause_publishing(nc: NatsClient, stream: str) -> StreamConfig:
    """Make the stream refuse new messages (a message limit at its count, new ones discarded: a
    publisher gets 503 "maximum messages exceeded" and its activity retries) while Temporal and the
    stream are copied, so that the two agree. Returns the configuration to put back; the limits it
    replaced are also kept in the stream's metadata, so `resume_publishing` can undo a pause left
    by a backup that was killed."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    config = info.config
    kept = {"max_msgs": config.max_msgs, "discard": str(getattr(config.discard, "value", config.discard or "old"))}
    mark = {**(config.metadata or {}), PAUSE_MARK: json.dumps({**kept, "since": dt.datetime.now(dt.UTC).isoformat()})}
    paused = dataclasses.replace(config, max_msgs=info.state.messages, discard=DiscardPolicy.NEW, metadata=mark)
    await js.update_stream(paused)
    return config


async def resume_publishing(nc: NatsClient, stream: str, config: StreamConfig | None = None) -> bool:
    """Lift a pause (this backup's, or one a killed backup left); False when there was none."""
    js = nc.jetstream()
    current = (await js.stream_info(stream)).config
    mark = (current.metadata or {}).get(PAUSE_MARK)
    if mark is None:
        return False
    if config is None:
        kept = json.loads(mark)
        discard = DiscardPolicy(kept["discard"])
        metadata = {k: v for k, v in (current.metadata or {}).items() if k != PAUSE_MARK}
        config = dataclasses.replace(current, max_msgs=kept["max_msgs"], discard=discard, metadata=metadata)
    await js.update_stream(config)
    return True


def saved_config(config: StreamConfig) -> dict[str, Any]:
    """The stream's own configuration as the restore API takes it (no server-set metadata)."""
    data = config.as_dict()
    data["metadata"] = {k: v for k, v in (config.metadata or {}).items() if not k.startswith("_nats")} or None
    return {k: v for k, v in data.items() if v is not None}


async def unreadable_messages(nc: NatsClient, stream: str, subject: str) -> list[int]:
    """Sequences the stream state counts but the server will not deliver: nats-server skips a
    message whose checksum fails (a flipped byte in a block file) without reporting it."""
    js = nc.jetstream()
    state = (await js.stream_info(stream)).state
    first, last = int(state.first_seq or 0), int(state.last_seq or 0)
    if not state.messages:
        return []
    deleted = set(state.deleted or [])
    seen: set[int] = set()
    sub = await js.subscribe(subject, ordered_consumer=True, headers_only=True)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=2.0)
            except TimeoutError:
                break
            seq = int(msg.metadata.sequence.stream)
            seen.add(seq)
            if seq >= last:
                break
    finally:
        await sub.unsubscribe()
    return [seq for seq in range(first, last + 1) if seq not in seen and seq not in deleted]


async def snapshot_stream(
    nc: NatsClient, stream: str, config: StreamConfig, data: Path, meta: Path, advance: Advance
) -> dict[str, Any]:
    """Save the stream (messages, no consumers: each reader restarts from its own stored
    position) into `data` (the server's s2 tar), and `config` (the unpaused one) and its state
    into `meta`."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        request = {"deliver_subject": inbox, "no_consumers": True, "chunk_size": CHUNK, "jsck": True}
        answer = await _api(nc, f"$JS.API.STREAM.SNAPSHOT.{stream}", request, timeout=120.0)
        with data.open("wb") as out:
            while True:
                try:
                    msg = await sub.next_msg(timeout=60.0)
                except TimeoutError as exc:
                    raise BackupError(f"stream {stream}: the server stopped sending its snapshot") from exc
                status = (msg.headers or {}).get("Status", "")
                if not msg.data:
                    if status and status != "204":
                        described = (msg.headers or {}).get("Description", "")
                        raise BackupError(f"stream {stream}: snapshot failed: {status} {described}".strip())
                    break
                out.write(msg.data)
                advance(len(msg.data))
                if msg.reply:  # flow control: the server sends the next window once we answer
                    await nc.publish(msg.reply, b"")
            out.flush()
            os.fsync(out.fileno())
    finally:
        await sub.unsubscribe()
    saved = {"config": saved_config(config), "state": answer["state"]}
    meta.write_text(json.dumps(saved, indent=2) + "\n")
    return saved


async def restore_stream(nc: NatsClient, data: Path, meta: Path, advance: Advance) -> dict[str, Any]:
    """Bring a saved stream back into a server that does not have it; returns its state."""
    saved = json.loads(meta.read_text())
    name = saved["config"]["name"]
    answer = await _api(nc, f"$JS.API.STREAM.RESTORE.{name}", saved)
    deliver = answer["deliver_subject"]
    with data.open("rb") as f:
        while chunk := f.read(64 * 1024):
            reply = await nc.request(deliver, chunk, timeout=60.0)
            if reply.data:
                raise BackupError(f"stream {name}: restore refused a chunk: {reply.data[:300]!r}")
            advance(len(chunk))
    final = await nc.request(deliver, b"", timeout=600.0)
    created: dict[str, Any] = json.loads(final.data)
    if "error" in created:
        error = created["error"]
        raise BackupError(f"stream {name}: restore failed: {error.get('description', error)}")
    state: dict[str, Any] = created.get("state", {})
    return state


async def stream_exists(nc: NatsClient, stream: str) -> bool:
    reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=30.0)
    answer = json.loads(reply.data)
    if "error" not in answer:
        return True
    if answer["error"].get("code") == 404:
        return False
    raise BackupError(f"stream {stream}: {answer['error'].get('description')}")
