"""The audit service's own tables (SQLModel models, written through Core) and the small queries everyone shares.

`ledger` is append-only: rows are only ever inserted, by the one ingest task, in batches
whose transaction also moves the consumer's tracking position. Times are stored as
fixed-width UTC text (`utc_text`), which sorts and compares the same in SQLite and PostgreSQL.
"""

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import BigInteger, Index, LargeBinary, String, Table, Text, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.audit.ledger import utc_text
from services.shared import migrate
from services.shared.projection_tables import table_of

NO_AUTOINCREMENT: dict[str, Any] = {"autoincrement": False}


class AuditModel(SQLModel, registry=registry()):
    """The audit service's tables: `metadata` is what its alembic environment migrates."""


class LedgerEntry(AuditModel, table=True):
    __tablename__ = "ledger"
    __table_args__ = (
        Index("ix_ledger_assignment_seq", "assignment_id", "seq"),
        Index("ix_ledger_unit", "unit_id", "ledger_seq"),
        # No index on type alone: every index costs each insert, and type is mostly asked for
        # together with an assignment or a unit, whose indexes narrow the scan first.
    )

    ledger_seq: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs=NO_AUTOINCREMENT)  # gapless, from 1
    event_id: str = Field(unique=True, sa_type=String(200))
    stream_seq: int = Field(sa_type=BigInteger)
    programme_id: str = Field(sa_type=String(100))
    assignment_id: str | None = Field(default=None, sa_type=String(200))
    unit_id: str | None = Field(default=None, sa_type=String(100))
    seq: int
    type: str = Field(sa_type=String(64))
    occurred_at: str = Field(sa_type=String(32))
    canonical: str = Field(sa_type=Text)
    prev_hash: str = Field(sa_type=String(64))
    hash: str = Field(sa_type=String(64))


class Tracking(AuditModel, table=True):
    __tablename__ = "tracking"

    consumer: str = Field(primary_key=True, sa_type=String(100))
    stream_seq: int = Field(sa_type=BigInteger)  # last JetStream sequence fully processed
    updated_at: str = Field(sa_type=String(32))


class Checkpoint(AuditModel, table=True):
    __tablename__ = "checkpoints"

    size: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs=NO_AUTOINCREMENT)
    root: str = Field(sa_type=String(64))
    head: str = Field(sa_type=String(64))
    created_at: str = Field(sa_type=String(32))
    signature: str = Field(sa_type=String(200))  # base64 Ed25519 over the signed note
    public_key: str = Field(sa_type=Text)  # PEM, so old checkpoints stay checkable after a key change
    # The C2SP signed note (tlog-checkpoint body + the log's note signature); None only for
    # checkpoints made before notes, whose signature covers ledger.checkpoint_note instead.
    note: str | None = Field(default=None, sa_type=Text)


class Cosignature(AuditModel, table=True):
    """A witness's C2SP cosignature (tlog-cosignature, cosignature/v1) of one checkpoint."""

    __tablename__ = "cosignatures"

    size: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs=NO_AUTOINCREMENT)
    witness: str = Field(primary_key=True, sa_type=String(200))  # the witness's key name
    witness_key: str = Field(sa_type=Text)  # its verifier key, name+keyid+base64
    timestamp: int = Field(sa_type=BigInteger)  # when it cosigned, POSIX seconds
    line: str = Field(sa_type=Text)  # the signature line, appended to the checkpoint's note


class MerkleNode(AuditModel, table=True):
    """An interior node of the Merkle tree at level >= NODE_LEVEL, written when a checkpoint covers
    it: a proof then reads O(log n) nodes plus fewer than 2**NODE_LEVEL leaves per piece."""

    __tablename__ = "merkle_nodes"

    level: int = Field(primary_key=True, sa_column_kwargs=NO_AUTOINCREMENT)
    idx: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs=NO_AUTOINCREMENT)
    hash: str = Field(sa_type=String(64))


class Gap(AuditModel, table=True):
    __tablename__ = "gaps"

    id: int | None = Field(default=None, primary_key=True)
    stream_key: str = Field(sa_type=String(200))  # assignment id, or programme:<id>
    expected_seq: int
    got_seq: int
    event_id: str = Field(sa_type=String(200))
    ledger_seq: int = Field(sa_type=BigInteger)
    detected_at: str = Field(sa_type=String(32))


class Reject(AuditModel, table=True):
    __tablename__ = "rejects"

    id: int | None = Field(default=None, primary_key=True)
    stream_seq: int = Field(sa_type=BigInteger)
    subject: str = Field(sa_type=String(300))
    reason: str = Field(sa_type=Text)
    data: bytes = Field(sa_type=LargeBinary)  # the first REJECT_KEEP_BYTES of the message
    received_at: str = Field(sa_type=String(32))


class AccessRecord(AuditModel, table=True):
    """The access log (contracts.access_log.AccessDecided), one row per message of the access stream."""

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_at", "at"),
        Index("ix_access_sub", "sub", "at"),
        Index("ix_access_refused", "allowed", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    stream_seq: int = Field(sa_type=BigInteger)  # in the access stream it came from (a new stream starts at 1)
    request_id: str = Field(sa_type=String(64))
    at: str = Field(sa_type=String(32))
    service: str = Field(sa_type=String(32))
    method: str = Field(sa_type=String(10))
    route: str = Field(sa_type=String(200))
    path: str = Field(sa_type=String(500))
    status: int
    allowed: bool
    why: str = Field(sa_type=String(500))
    sub: str | None = Field(default=None, sa_type=String(200))
    role: str | None = Field(default=None, sa_type=String(32))
    unit_id: str | None = Field(default=None, sa_type=String(100))
    target: str | None = Field(default=None, sa_type=String(200))


metadata = AuditModel.metadata
ledger = table_of(LedgerEntry)
tracking = table_of(Tracking)
checkpoints = table_of(Checkpoint)
cosignatures = table_of(Cosignature)
merkle_nodes = table_of(MerkleNode)
gaps = table_of(Gap)
rejects = table_of(Reject)
access_records = table_of(AccessRecord)

REJECT_KEEP_BYTES = 64 * 1024
NODE_LEVEL = 8
HEAD_COLUMNS = (ledger.c.ledger_seq, ledger.c.hash)


def now_text() -> str:
    return utc_text(dt.datetime.now(dt.UTC))


_INSERTS: dict[tuple[str, str], str] = {}
# SQLite binds at most 32,766 parameters per statement (3.32+); 400 ledger rows use 4,800.
SQLITE_ROWS_PER_INSERT = 400


async def insert_many(conn: AsyncConnection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert of tuples in the table's column order.

    The INSERT is compiled from the Core table once per dialect and handed to the driver
    directly: per row, SQLAlchemy's parameter processing is skipped (the values are already
    plain str/int/None), which is a good share of ingest's time. On SQLite the rows go in
    multi-row `VALUES` statements rather than an executemany: the driver's executemany
    releases and retakes the GIL around every row's step, and while the event loop is busy
    (preparing the next batch) each retake waits for the interpreter's switch interval.
    """
    if not rows:
        return
    key = (table.name, conn.dialect.name)
    sql = _INSERTS.get(key)
    if sql is None:
        compiled = table.insert().compile(dialect=conn.dialect)
        names = list(compiled.positiontup or [])
        if names != [c.name for c in table.columns]:  # a named paramstyle: the Core path instead
            await conn.execute(table.insert(), [dict(zip(table.columns.keys(), r, strict=True)) for r in rows])
            return
        sql = _INSERTS[key] = str(compiled)
    if conn.dialect.name != "sqlite":
        await conn.exec_driver_sql(sql, rows)
        return
    head, _, one = sql.partition(" VALUES ")
    step = SQLITE_ROWS_PER_INSERT
    for lo in range(0, len(rows), step):
        chunk = rows[lo : lo + step]
        # Full chunks share one statement text, so the driver's statement cache keeps it prepared.
        statement = f"{head} VALUES {','.join([one] * len(chunk))}"
        await conn.exec_driver_sql(statement, tuple(v for row in chunk for v in row))


async def create_tables(engine: AsyncEngine) -> None:
    """The schema at head: alembic `upgrade head` (services/audit/migrations), under the migration lock."""
    await migrate.upgrade(engine, "audit")


async def tracked_position(conn: AsyncConnection, consumer: str) -> int:
    """A consumer's stored stream position (0 on its first start, when its row is made)."""
    row = (await conn.execute(select(tracking.c.stream_seq).where(tracking.c.consumer == consumer))).first()
    if row is None:
        await conn.execute(tracking.insert(), [{"consumer": consumer, "stream_seq": 0, "updated_at": now_text()}])
    return int(row.stream_seq) if row else 0


async def ledger_head(conn: AsyncConnection) -> tuple[int, str | None]:
    """(size, hash of the last entry) — the ledger is gapless, so size == last ledger_seq."""
    row = (await conn.execute(select(*HEAD_COLUMNS).order_by(ledger.c.ledger_seq.desc()).limit(1))).first()
    return (int(row.ledger_seq), str(row.hash)) if row else (0, None)


async def ledger_size(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.coalesce(func.max(ledger.c.ledger_seq), 0)))).scalar_one())


async def latest_checkpoint(conn: AsyncConnection, size: int | None = None) -> dict[str, Any] | None:
    query = select(checkpoints)
    query = query.where(checkpoints.c.size == size) if size is not None else query.order_by(checkpoints.c.size.desc())
    row = (await conn.execute(query.limit(1))).mappings().first()
    return dict(row) if row else None


async def cosignatures_of(conn: AsyncConnection, size: int | None = None) -> list[dict[str, Any]]:
    """The witnesses' cosignatures of the checkpoint of `size` (of every checkpoint when None)."""
    query = select(cosignatures).order_by(cosignatures.c.size, cosignatures.c.witness)
    if size is not None:
        query = query.where(cosignatures.c.size == size)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def stream_rows(
    engine: AsyncEngine, query: Any, keys: tuple[Any, ...], after: tuple[Any, ...], chunk: int = 2000
) -> AsyncIterator[Any]:
    """Rows of `query` in `keys` order, fetched in keyset-paged chunks of short transactions.

    Memory stays at one chunk however long the ledger is, and no read transaction is held
    open across the whole walk (which would pin the SQLite WAL or a PostgreSQL snapshot).
    """
    while True:
        cond = keys[0] > after[0] if len(keys) == 1 else tuple_(*keys) > tuple_(*after)
        async with engine.connect() as conn:
            rows = (await conn.execute(query.where(cond).order_by(*keys).limit(chunk))).all()
        for row in rows:
            yield row
        if len(rows) < chunk:
            return
        after = tuple(getattr(rows[-1], key.name) for key in keys)
