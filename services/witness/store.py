"""The witness's own table: per log origin, the latest checkpoint it cosigned.

A row changes only by compare-and-swap on (size, root): the check of the old size and the write
of the new state are one statement in one transaction, so two requests racing for one log
cannot roll it back (the race c2sp.org/tlog-witness describes).
"""

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import BigInteger, String, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.shared import migrate
from services.shared.projection_tables import table_of

NO_AUTOINCREMENT = {"autoincrement": False}


class WitnessModel(SQLModel, registry=registry()):
    """The witness's tables: `metadata` is what its alembic environment migrates."""


class LogState(WitnessModel, table=True):
    __tablename__ = "witnessed_logs"

    origin: str = Field(primary_key=True, sa_type=String(300))
    size: int = Field(sa_type=BigInteger, sa_column_kwargs=NO_AUTOINCREMENT)
    root: str = Field(sa_type=String(64))  # hex of the RFC 6962 root hash
    note: str = Field(sa_type=Text)  # the log-signed checkpoint it cosigned: evidence if the log forks later
    cosigned_at: str = Field(sa_type=String(32))


metadata = WitnessModel.metadata
logs = table_of(LogState)


@dataclass(frozen=True)
class Recorded:
    size: int
    root: bytes
    note: str


async def create_tables(engine: AsyncEngine) -> None:
    """The schema at head: alembic `upgrade head` (services/witness/migrations), under the migration lock."""
    await migrate.upgrade(engine, "witness")


async def recorded(conn: AsyncConnection, origin: str) -> Recorded | None:
    row = (await conn.execute(select(logs).where(logs.c.origin == origin))).mappings().first()
    return Recorded(int(row["size"]), bytes.fromhex(row["root"]), str(row["note"])) if row else None


async def advance(engine: AsyncEngine, origin: str, old: Recorded | None, size: int, root: bytes, note: str) -> bool:
    """Move `origin` from `old` (None: never cosigned) to the new checkpoint, in one transaction.
    False when another request moved it first (the caller answers from the state it finds)."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    values = {"size": size, "root": root.hex(), "note": note, "cosigned_at": now}
    try:
        async with engine.begin() as conn:
            if old is None:
                await conn.execute(logs.insert(), [{"origin": origin, **values}])
                return True
            where = (logs.c.origin == origin) & (logs.c.size == old.size) & (logs.c.root == old.root.hex())
            changed = await conn.execute(update(logs).where(where).values(**values))
            return changed.rowcount == 1
    except IntegrityError:  # a first checkpoint of this log inserted by another request meanwhile
        return False


async def all_states(conn: AsyncConnection) -> list[dict[str, object]]:
    rows = (await conn.execute(select(logs).order_by(logs.c.origin))).mappings()
    return [
        {"origin": r["origin"], "size": r["size"], "root": r["root"], "cosigned_at": r["cosigned_at"]} for r in rows
    ]
