"""kill -9 of the notifier in the middle of a burst of escalations: after a restart every delivery
arrives, counted by delivery id at a real webhook receiver. A crash between a receiver's 200 and
the notifier's commit sends again with the same id: the test reports how many ids repeated."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from deploy.local.servers import free_port, wait_for_port
from tests.e2e.support import EventFactory, auth
from tests.support.notify import webhook_receiver
from tests.support.processes import spawn, stop
from tests.support.publishing import publish
from tests.support.waiting import until

BURST = int(os.environ.get("NOTIFY_KILL_BURST", "1000"))


@pytest.mark.usefixtures("event_stream")
async def test_kill_9_in_a_burst_loses_nothing(tmp_path: Path, nats_url: str) -> None:
    keys = tmp_path / "keys"
    headers = auth(keys, "department", "yuzhong")  # makes the key pair the notifier reads
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "NOTIFY_PORT": str(port),
        "POLICYFLOW_VAR": str(tmp_path),
        "POLICYFLOW_KEY_DIR": str(keys),
        "NOTIFY_QUIET_HOURS": "",
        "NOTIFY_DIGEST_THRESHOLD": "0",  # a thousand to one unit in a day would be folded into a digest
        "NOTIFY_ALLOW_PRIVATE_URLS": "1",
        "NOTIFY_RETRY_BASE_SECONDS": "0.1",
        "NOTIFY_POLL_SECONDS": "0.1",
        "NOTIFY_ACK_WAIT_SECONDS": "30",
    }
    log = tmp_path / "notify.log"
    events = [EventFactory("cq-2022-79", i, "yuzhong").escalated("yellow") for i in range(1, BURST + 1)]
    async with webhook_receiver() as receiver, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        proc = spawn("services.notify", env, log)
        try:
            wait_for_port(port, proc, "the notifier", timeout=30)
            body = {"webhooks": [{"url": f"{receiver.url}/unit"}]}
            assert (await http.put("/v1/units/yuzhong/subscriptions", json=body, headers=headers)).status_code == 200
            await publish(nats_url, events)
            await until(lambda: len(receiver.ok()) >= BURST // 4, "a quarter of the burst delivered", timeout=60)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            before = len(receiver.per_delivery())
            assert before < BURST, "the burst was over before the kill: nothing was tested"
            proc = spawn("services.notify", env, log)
            wait_for_port(port, proc, "the restarted notifier", timeout=30)
            await until(lambda: len(receiver.per_delivery()) >= BURST, f"all {BURST} deliveries", timeout=60)
            sup = auth(keys, "supervisor")
            r = await http.get("/v1/notifications", params={"status": "sent", "limit": 1}, headers=sup)
            await until(lambda: http_total(http, sup), "every delivery recorded as sent", timeout=30)
            assert r.status_code == 200
        finally:
            stop(proc)
        counts = receiver.per_delivery()
        repeated = {d: n for d, n in counts.items() if n > 1}
        assert len(counts) == BURST and sum(counts.values()) == len(receiver.ok())
        # At least once on the wire: only a batch in flight at the kill can come twice.
        assert len(repeated) <= 128, repeated
        print(f"\nnotify kill -9: {BURST} delivered, {before} before the kill, {len(repeated)} ids repeated")


async def http_total(http: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    r = await http.get("/v1/notifications", params={"status": "sent", "limit": 1}, headers=headers)
    return r.status_code == 200 and r.json()["total"] == BURST
