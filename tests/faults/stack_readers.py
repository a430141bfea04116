"""How a test reaches the running stack and reads what it holds, as a base of `FaultStack`.

`StackReaders` gives the clients (service URLs, tokens, the NATS admin connection) and the
readers the invariants are checked with: the event stream (as the NATS admin user, filtered by
programme), the durable consumers, the audit ledger (NDJSON), verify, replay, gaps, the progress
read model (its API and its SQLite rows), and `quiesce`, which waits until they all agree.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import DeliverPolicy

from contracts.base import UserRole
from contracts.events import Event
from contracts.subjects import EVENT_STREAM, EVENT_SUBJECT_PREFIX
from deploy.local.stack import Stack
from services.shared.auth import issue_token
from tests.faults.figures import say
from tests.support.waiting import until


class StackReaders:
    """Clients and readers over a started stack; `FaultStack` supplies its state directory and `Stack`."""

    var_dir: Path
    stack: Stack

    @property
    def key_dir(self) -> Path:
        return self.var_dir / "keys"

    def url(self, service: str) -> str:
        return self.stack.url(service)

    def token(self, role: str, unit_id: str | None = None, sub: str | None = None) -> str:
        return issue_token(self.key_dir, UserRole(role), unit_id, sub=sub)

    def headers(self, role: str, unit_id: str | None = None, sub: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, unit_id, sub)}"}

    async def nats_admin(self) -> NatsClient:
        return await nats.connect(self.stack.nats_url_for("admin"), max_reconnect_attempts=-1, connect_timeout=5)

    # ---- what the system holds ----------------------------------------------------------------

    async def stream_events(self, programme_id: str) -> list[tuple[int, Event]]:
        """(stream seq, event) of every message on the programme's subjects, read as the admin user."""
        subject = f"{EVENT_SUBJECT_PREFIX}.{programme_id}.>"
        nc = await self.nats_admin()
        try:
            js = nc.jetstream()
            info = await js.stream_info(EVENT_STREAM, subjects_filter=subject)
            expected = sum((info.state.subjects or {}).values())
            out: list[tuple[int, Event]] = []
            if expected == 0:
                return out
            sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
            try:
                while len(out) < expected:
                    msg = await sub.next_msg(timeout=10.0)
                    out.append((int(msg.metadata.sequence.stream), Event.model_validate_json(msg.data)))
            finally:
                await sub.unsubscribe()
            return out
        finally:
            await nc.close()

    async def stream_last_seq(self) -> int:
        nc = await self.nats_admin()
        try:
            return int((await nc.jetstream().stream_info(EVENT_STREAM)).state.last_seq)
        finally:
            await nc.close()

    async def consumers_idle(self) -> dict[str, tuple[int, int]]:
        """(pending, ack pending) of every durable on the event stream: (0, 0) when all is consumed."""
        nc = await self.nats_admin()
        try:
            js = nc.jetstream()
            out = {}
            for info in await js.consumers_info(EVENT_STREAM):
                if info.config.durable_name:  # not the ephemeral readers (ours among them), which linger a while
                    out[str(info.name)] = (int(info.num_pending or 0), int(info.num_ack_pending or 0))
            return out
        finally:
            await nc.close()

    async def ledger(
        self, http: httpx.AsyncClient, programme_id: str | None = None, refusals: bool = False
    ) -> list[dict[str, Any]]:
        """Ledger entries (NDJSON export form), optionally only those of one programme; the facts, and
        the refused requests' entries (`AccessRefused`, which no stream message matches) if asked."""
        headers = {**self.headers("auditor"), "Accept": "application/x-ndjson"}
        r = await http.get(f"{self.url('audit')}/v1/audit/events", headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        rows = [json.loads(line) for line in r.text.splitlines() if line.strip()]
        return [
            row
            for row in rows
            if (programme_id is None or row["programme_id"] == programme_id)
            and (refusals or row["type"] != "AccessRefused")
        ]

    async def ledger_size(self, http: httpx.AsyncClient) -> int:
        r = await http.get(f"{self.url('audit')}/healthz", timeout=10)
        return int(r.json()["ledger_size"])

    async def read_model_position(self, http: httpx.AsyncClient) -> int:
        r = await http.get(f"{self.url('progress')}/healthz", timeout=10)
        return int(r.json()["read_model_position"])

    async def verify(self, http: httpx.AsyncClient) -> dict[str, Any]:
        r = await http.get(f"{self.url('audit')}/v1/audit/verify", headers=self.headers("auditor"), timeout=60)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def replay(self, http: httpx.AsyncClient, programme_id: str) -> dict[str, dict[str, Any]]:
        as_of = dt.datetime.now(dt.UTC).isoformat()
        r = await http.get(
            f"{self.url('audit')}/v1/audit/replay",
            params={"as_of": as_of},
            headers=self.headers("auditor"),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return {s["assignment_id"]: s for s in r.json()["items"] if s["programme_id"] == programme_id}

    async def gaps(self, http: httpx.AsyncClient, programme_id: str) -> list[dict[str, Any]]:
        r = await http.get(f"{self.url('audit')}/v1/audit/gaps", headers=self.headers("auditor"), timeout=30)
        assert r.status_code == 200, r.text
        return [
            g
            for g in r.json()["items"]
            if str(g["stream_key"]).split(".")[0].removeprefix("programme:") == programme_id
        ]

    async def workflow_status(self, http: httpx.AsyncClient, assignment_id: str) -> dict[str, Any]:
        r = await http.get(
            f"{self.url('progress')}/v1/assignments/{assignment_id}", headers=self.headers("supervisor"), timeout=60
        )
        assert r.status_code == 200, f"{assignment_id}: {r.status_code} {r.text}"
        return dict(r.json())

    async def status_page(self, http: httpx.AsyncClient, programme_id: str) -> dict[str, dict[str, Any]]:
        r = await http.get(
            f"{self.url('progress')}/v1/status",
            params={"programme_id": programme_id, "limit": 500},
            headers=self.headers("supervisor"),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return {item["assignment_id"]: item for item in r.json()["items"]}

    def read_model_reports(self, programme_id: str) -> dict[str, tuple[int, float]]:
        """(reports, percent) per assignment straight from the progress read model's rows (read-only)."""
        path = self.var_dir / "progress.sqlite"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            table_name = next(t for t in tables if t.endswith("_assignments"))
            rows = db.execute(
                f"select assignment_id, reports, percent from {table_name} where programme_id = ?",
                (programme_id,),
            ).fetchall()
        return {aid: (int(n), float(p)) for aid, n, p in rows}

    async def quiesce(self, http: httpx.AsyncClient, programme_id: str, timeout: float = 180.0) -> dict[str, int]:
        """Wait until the ledger holds every distinct event of the programme that the stream holds, the
        read model has caught up with the stream's last message, every durable consumer (ledger, read
        model, inbox) has nothing pending or unacknowledged, and nothing moved for a second."""
        last: dict[str, int] = {}

        async def settled() -> bool:
            nonlocal last
            stream = await self.stream_events(programme_id)
            now = {
                "stream_last_seq": await self.stream_last_seq(),
                "stream_messages": len(stream),
                "stream_distinct": len({e.event_id for _, e in stream}),
                "ledger_rows": len(await self.ledger(http, programme_id)),
                "read_model_position": await self.read_model_position(http),
                "consumers_busy": sum(1 for busy in (await self.consumers_idle()).values() if busy != (0, 0)),
            }
            done = (
                now["ledger_rows"] == now["stream_distinct"]
                and now["read_model_position"] == now["stream_last_seq"]
                and now["consumers_busy"] == 0
                and now == last
            )
            last = now
            if os.environ.get("FAULTS_DEBUG"):
                say(f"  quiesce {time.monotonic():.1f} {now} {await self.consumers_idle()}")
            return done

        await until(settled, f"quiescence of {programme_id}", timeout, interval=1.0)
        return last
