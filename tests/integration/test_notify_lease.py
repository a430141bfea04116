"""Two notifier processes on one database (SQLite and PostgreSQL): one consumes and sends, the other
serves HTTP and takes over when the first stops; every delivery arrives once."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.databases import TestDatabase, database  # noqa: F401 - the fixture
from tests.e2e.support import EventFactory, auth
from tests.support.notify import notifier, notify_settings, subscribe, webhook_receiver
from tests.support.publishing import publish
from tests.support.waiting import until


async def active(url: str) -> bool:
    async with httpx.AsyncClient(base_url=url) as http:
        return bool((await http.get("/healthz")).json()["active"])


@pytest.mark.usefixtures("event_stream")
async def test_two_notifiers_on_one_database_send_each_delivery_once(
    tmp_path: Path,
    nats_url: str,
    database: TestDatabase,  # noqa: F811
) -> None:
    keys = tmp_path / "keys"
    settings = notify_settings(
        tmp_path, nats_url, 9, database_url=database.url("notify"), lease_retry_seconds=0.1, digest_threshold=0
    )
    units = ["yuzhong", "wanzhou"]
    first = [EventFactory("cq-2022-79", i, units[i % 2]).escalated("yellow") for i in range(1, 61)]
    later = [EventFactory("cq-2022-79", i, units[i % 2]).escalated("blue") for i in range(61, 121)]
    async with webhook_receiver() as receiver, AsyncExitStack() as a_stack:
        a_url, _ = await a_stack.enter_async_context(notifier(settings))
        async with notifier(settings) as (b_url, _), httpx.AsyncClient(base_url=b_url) as http:
            assert await active(a_url) and not await active(b_url)
            for unit in units:
                await subscribe(http, f"/v1/units/{unit}/subscriptions", auth(keys, "department", unit),
                                {"webhooks": [{"url": f"{receiver.url}/{unit}"}]})  # fmt: skip
            await publish(nats_url, first)
            await until(lambda: len(receiver.per_delivery()) == 60, "the first sixty delivered")
            await a_stack.aclose()  # the active one stops: the other takes the lease
            await until(lambda: active(b_url), "the second notifier active")
            await publish(nats_url, later)
            await until(lambda: len(receiver.per_delivery()) == 120, "all hundred and twenty delivered")
            sup = auth(keys, "supervisor")

            async def all_sent() -> bool:
                r = await http.get("/v1/notifications", params={"status": "sent", "limit": 1}, headers=sup)
                return int(r.json()["total"]) == 120

            await until(all_sent, "every delivery recorded as sent")
        counts = receiver.per_delivery()
        assert len(counts) == 120 and set(counts.values()) == {1}, {d: n for d, n in counts.items() if n > 1}
