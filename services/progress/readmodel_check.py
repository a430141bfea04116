"""Whether the read model says what the event stream says: fold the stream afresh into a scratch
database and compare every row with the live tables (a byte changed on disk, a row edited by
hand, a projection bug). Nothing live is changed; the answer names each row and column that differ.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.subjects import EVENT_STREAM, READ_MODEL_DURABLE
from services.progress import readmodel
from services.progress.store import READ_MODEL
from services.shared.db import make_engine, sqlite_url

MAX_LISTED = 50


async def _rows(engine: AsyncEngine, table: Table) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = [c.name for c in table.primary_key.columns]
    async with engine.connect() as conn:
        result = await conn.execute(select(table))
        rows = [dict(r._mapping) for r in result]
    return {tuple(r[k] for k in keys): r for r in rows}


async def check(
    live: AsyncEngine, js: Any, stream: str = EVENT_STREAM, consumer: str = READ_MODEL_DURABLE
) -> dict[str, Any]:
    """{"ok", "position", "rebuilt_position", "rows_compared", "differences": [...]}.

    The scratch fold reads to the stream's end; when the live read model is not there yet the
    answer says so (`caught_up: false`) and rows still being folded may differ for that reason.
    """
    with tempfile.TemporaryDirectory(prefix="pf-readmodel-check-") as scratch_dir:
        scratch = make_engine(sqlite_url(Path(scratch_dir) / "rebuilt.sqlite"))
        try:
            await readmodel.rebuild(scratch, js, stream=stream, consumer=consumer)
            rebuilt_position = await readmodel.position(scratch, consumer)
            position = await readmodel.position(live, consumer)
            differences: list[dict[str, Any]] = []
            compared = 0
            for table in (READ_MODEL.assignments, READ_MODEL.programmes, READ_MODEL.outcomes, READ_MODEL.calendar):
                if table is None:
                    continue
                stored, rebuilt = await _rows(live, table), await _rows(scratch, table)
                compared += len(rebuilt)
                for key in sorted(stored.keys() | rebuilt.keys(), key=str):
                    a, b = stored.get(key), rebuilt.get(key)
                    if a is None or b is None:
                        differences.append({"table": table.name, "key": list(key), "column": None,
                                            "stored": a is not None, "rebuilt": b is not None})  # fmt: skip
                        continue
                    differences += [
                        {"table": table.name, "key": list(key), "column": column,
                         "stored": str(a.get(column))[:200], "rebuilt": str(value)[:200]}
                        for column, value in b.items()
                        if column != "updated_at" and a.get(column) != value
                    ]  # fmt: skip
        finally:
            await scratch.dispose()
    return {
        "ok": not differences,
        "caught_up": position == rebuilt_position,
        "position": position,
        "rebuilt_position": rebuilt_position,
        "rows_compared": compared,
        "differences": differences[:MAX_LISTED],
        "differences_total": len(differences),
    }
