"""The raw halves' read model: one row per assignment and a stored position, written per batch in
one transaction, on the same database as the service's (asyncpg on PostgreSQL, the stdlib sqlite3
at synchronous=FULL on SQLite); no fold, no validation: the least a read model must do."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from bench import pg

ROWS = "CREATE TABLE IF NOT EXISTS raw_read_model (assignment_id text PRIMARY KEY, last_seq bigint, data text)"
POSITION = "CREATE TABLE IF NOT EXISTS raw_position (consumer text PRIMARY KEY, seq bigint NOT NULL)"
UPSERT = ("INSERT INTO raw_read_model (assignment_id, last_seq, data) VALUES ({}, {}, {}) ON CONFLICT (assignment_id) "
          "DO UPDATE SET last_seq = excluded.last_seq, data = excluded.data")  # fmt: skip
MOVE = (
    "INSERT INTO raw_position (consumer, seq) VALUES ('raw', {}) "
    "ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq"
)


class RawRows:
    def __init__(self, writer: Any, reader: Any) -> None:
        self.writer, self.reader = writer, reader

    @classmethod
    async def open(cls, pg_url: str | None, sqlite_path: Path) -> RawRows:
        if pg_url is not None:
            writer, reader = await pg.connect(pg_url), await pg.connect(pg_url)
            await writer.execute(ROWS)
            await writer.execute(POSITION)
            return cls(writer, reader)

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(sqlite_path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            return conn

        writer = await asyncio.to_thread(connect)
        writer.execute(ROWS)
        writer.execute(POSITION)
        return cls(writer, await asyncio.to_thread(connect))

    async def apply(self, rows: list[tuple[str, int, str]], position: int) -> None:
        if isinstance(self.writer, sqlite3.Connection):
            await asyncio.to_thread(self._sqlite_apply, rows, position)
            return
        async with self.writer.transaction():
            await self.writer.executemany(UPSERT.format("$1", "$2", "$3"), rows)
            await self.writer.execute(MOVE.format("$1"), position)

    def _sqlite_apply(self, rows: list[tuple[str, int, str]], position: int) -> None:
        self.writer.execute("BEGIN")
        self.writer.executemany(UPSERT.format("?", "?", "?"), rows)
        self.writer.execute(MOVE.format("?"), (position,))
        self.writer.execute("COMMIT")

    async def position(self) -> int:
        sql = "SELECT coalesce(max(seq), 0) FROM raw_position"
        if isinstance(self.reader, sqlite3.Connection):
            return int((await asyncio.to_thread(self.reader.execute, sql)).fetchone()[0])
        return int(await self.reader.fetchval(sql))

    async def close(self) -> None:
        for conn in (self.writer, self.reader):
            if isinstance(conn, sqlite3.Connection):
                conn.close()
            else:
                await conn.close()
