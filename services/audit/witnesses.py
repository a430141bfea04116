"""Asking the configured witnesses to cosign the latest checkpoint (C2SP tlog-witness add-checkpoint).

After each new checkpoint (and once at start) the latest one is sent to every witness with a
consistency proof from the size that witness last cosigned: ``old <size>``, the proof's hashes
in base64, an empty line, then the signed note. A witness that has moved elsewhere answers 409
with its size (``text/x.tlog.size``) and is asked again from there. Each cosignature returned is
checked against the witness's verifier key before it is stored; a refusal is logged with the
witness's answer (a 422 or a 409 there means the witness saw another history of this log).
Requests go one at a time in the background: checkpoints made meanwhile are covered by the
next round, which always sends the latest. A witness that cannot be reached is asked again a few
seconds later.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import httpx
import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.audit.proofs import consistency_proof
from services.audit.store import cosignatures, latest_checkpoint
from services.shared.signed_note import Verifier, cosignature_time, split_note

log = structlog.get_logger("audit.witnesses")
SIZE_TYPE = "text/x.tlog.size"


def add_checkpoint_body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("".join(line + "\n" for line in lines) + "\n" + note).encode()


class WitnessClient:
    def __init__(
        self, engine: AsyncEngine, witnesses: list[tuple[str, Verifier]], timeout: float = 10.0, retry: float = 5.0
    ) -> None:
        self.engine = engine
        self.witnesses = witnesses
        self.timeout = timeout
        self.retry = retry  # seconds before asking again after a witness could not be reached
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.witnesses:
            self._wanted.set()  # the latest checkpoint may not be cosigned yet
            self._task = asyncio.create_task(self._run(), name="audit-witnesses")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def checkpoint_made(self, _: dict[str, Any]) -> None:
        self._wanted.set()

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            while True:
                await self._wanted.wait()
                self._wanted.clear()
                async with self.engine.connect() as conn:
                    cp = await latest_checkpoint(conn)
                if cp is None or cp.get("note") is None:
                    continue
                unreached = False
                for url, witness in self.witnesses:
                    try:
                        await self._ask(client, url, witness, cp)
                    except (httpx.HTTPError, OSError, ValueError, LookupError) as exc:
                        unreached = True
                        log.warning("witness.unreachable", witness=witness.name, url=url, error=str(exc)[:300])
                if unreached:  # not yet started, or restarting: a quiet ledger makes no checkpoint to ask with
                    asyncio.get_running_loop().call_later(self.retry, self._wanted.set)

    async def _last_cosigned(self, witness: Verifier) -> int:
        query = select(func.coalesce(func.max(cosignatures.c.size), 0)).where(cosignatures.c.witness == witness.name)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def _ask(self, client: httpx.AsyncClient, url: str, witness: Verifier, cp: dict[str, Any]) -> None:
        size, note = int(cp["size"]), str(cp["note"])
        old = await self._last_cosigned(witness)
        for _ in range(3):
            if old > size:  # the witness has seen more of this log than the latest checkpoint here
                log.error("witness.ahead", witness=witness.name, witness_size=old, size=size)
                return
            proof: list[bytes] = []
            if 0 < old < size:
                async with self.engine.connect() as conn:
                    proof = await consistency_proof(conn, old, size)
            answer = await client.post(
                url.rstrip("/") + "/add-checkpoint", content=add_checkpoint_body(old, proof, note)
            )
            if answer.status_code == 409 and answer.headers.get("content-type", "").startswith(SIZE_TYPE):
                old = int(answer.text.strip())  # it cosigned another size last: prove from there
                continue
            break
        if answer.status_code != 200:
            log.error(
                "witness.refused", witness=witness.name, size=size, status=answer.status_code, answer=answer.text[:2000]
            )
            return
        body, _ = split_note(note)
        for line in answer.text.splitlines():
            timestamp = cosignature_time(body, line, witness)
            if timestamp is None:
                continue
            row = {
                "size": size,
                "witness": witness.name,
                "witness_key": witness.text,
                "timestamp": timestamp,
                "line": line,
            }
            async with self.engine.begin() as conn:
                where = (cosignatures.c.size == size) & (cosignatures.c.witness == witness.name)
                await conn.execute(delete(cosignatures).where(where))
                await conn.execute(cosignatures.insert(), [row])
            log.info("witness.cosigned", witness=witness.name, size=size, timestamp=timestamp)
            return
        log.error("witness.bad_cosignature", witness=witness.name, size=size, answer=answer.text[:500])
