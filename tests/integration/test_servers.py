"""The embedded servers start from the wheels and answer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import nats
from temporalio.client import Client

from deploy.local.servers import Server


async def test_nats_jetstream_answers(nats_url: str, event_stream: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    info = await js.stream_info(event_stream)
    assert info.config.deny_purge is True
    assert info.config.duplicate_window and info.config.duplicate_window >= 3600
    await nc.close()


async def test_temporal_dev_server_answers(temporal_client: Client, temporal_proc: Server) -> None:
    assert (await temporal_client.count_workflows()).count >= 0
    # its SQLite file is in WAL mode (deploy/local/servers.py: --sqlite-pragma journal_mode=wal)
    db = Path(temporal_proc.argv[temporal_proc.argv.index("--db-filename") + 1])
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
