"""Notify: a morning on which escalations fall due at once. Deliveries per second from the event
stream to a local webhook receiver through the notifier (`python -m services.notify`: its
FastStream subscriber records the deliveries, its sender signs and POSTs them), against a raw httpx
client posting the same bodies with the same concurrency, in the same run, to the same receiver.

The receiver is a process of its own (`python -m bench.notify receiver PORT`) that counts distinct
delivery ids per path. Each policyflow round publishes its escalation events straight into the
stream (one unit subscribed with one webhook) and times from the first publish to the last
delivery at the receiver: `extra.last_arrival_s` is that time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time
from typing import Any

import httpx
import nats
import uvicorn
from fastapi import FastAPI, Request, Response

from bench import pg
from bench.common import Result, interleaved, median, spread
from bench.context import Context
from contracts.base import SYSTEM_ACTOR, UserRole
from contracts.events import Deadline, SupervisionEscalated, make_event
from contracts.ids import assignment_id
from contracts.subjects import event_subject
from deploy.local.servers import free_port, nats_server, wait_for_port
from services.notify.channels import DELIVERY_HEADER, SIGNATURE_HEADER, signature, webhook_body
from services.shared.auth import ensure_keys, issue_token
from services.shared.streams import ensure_event_stream

NAME = "notify"
UNIT = "deliveries/s"
TARGET_RATIO = 0.5
CONCURRENCY = 64  # the notifier's NOTIFY_CONCURRENCY default; the raw client posts as many at once


def escalations(unit: str, count: int) -> list[Any]:
    due = Deadline(key="annual_plan:2026", kind="annual_plan", due=dt.date(2026, 4, 1), year=2026)
    at = dt.datetime(2026, 5, 6, 16, 0, tzinfo=dt.UTC)  # 00:00 Beijing time: they fall due together
    return [
        make_event(
            SupervisionEscalated(deadline=due, level="yellow", working_days_overdue=20),
            seq=0,
            occurred_at=at,
            programme_id="bench-notify",
            actor=SYSTEM_ACTOR,
            assignment_id=assignment_id("bench-notify", i, unit),
            task_no=i,
            unit_id=unit,
        )  # fmt: skip
        for i in range(1, count + 1)
    ]


async def delivered(http: httpx.AsyncClient, url: str, path: str) -> int:
    return int((await http.get(f"{url}/count/{path}")).json())


async def wait_count(http: httpx.AsyncClient, url: str, path: str, count: int, timeout: float = 600) -> float:
    deadline = time.perf_counter() + timeout
    while (n := await delivered(http, url, path)) < count:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {n} of {count} deliveries arrived at /{path} within {timeout:.0f}s")
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def raw_round(receiver: str, count: int, i: int) -> float:
    path = f"raw{i}"
    rows = [
        {"id": f"raw-{i}-{n}", "event_id": f"e{n}", "event_type": "SupervisionEscalated", "unit_id": "u",
         "assignment_id": f"a{n}", "level": "yellow", "subject": "【黄色督办】", "text": "已逾期20个工作日",
         "link": None, "occurred_at": dt.datetime(2026, 5, 6, 16, 0, tzinfo=dt.UTC)}
        for n in range(count)
    ]  # fmt: skip
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY)) as http:
        started = time.perf_counter()

        async def post(row: dict[str, Any]) -> None:
            body = webhook_body(row)
            headers = {SIGNATURE_HEADER: signature("secret", body), DELIVERY_HEADER: row["id"]}
            async with limit:
                r = await http.post(f"{receiver}/{path}", content=body, headers=headers)
            r.raise_for_status()

        await asyncio.gather(*(post(r) for r in rows))
        done = await wait_count(http, receiver, path, count)
    return count / (done - started)


async def run(ctx: Context) -> Result:
    count = ctx.size(2000, 10_000)
    rounds = 1 if ctx.quick else 2
    result = Result(NAME, UNIT, TARGET_RATIO, ctx.quick)
    work = ctx.work_dir
    env = {**os.environ, "POLICYFLOW_VAR": str(work), "POLICYFLOW_KEY_DIR": str(work / "keys")}
    ensure_keys(work / "keys")
    server = nats_server(work / "nats").start()
    procs = []
    database = await pg.create_database() if ctx.db == "postgres" else None
    if database is not None:
        env["NOTIFY_DATABASE_URL"] = database
    try:
        nats_url = f"nats://127.0.0.1:{server.port}"
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await ensure_event_stream(js)
        rport, nport = free_port(), free_port()
        receiver = spawn_module(["bench.notify", "receiver", str(rport)], env, work / "receiver.log")
        procs.append(receiver)
        notify_env = env | {
            "NATS_URL": nats_url, "NOTIFY_PORT": str(nport), "NOTIFY_QUIET_HOURS": "", "NOTIFY_DIGEST_THRESHOLD": "0",
            "NOTIFY_ALLOW_PRIVATE_URLS": "1", "NOTIFY_CONCURRENCY": str(CONCURRENCY), "LOG_LEVEL": "WARNING",
        }  # fmt: skip
        with ctx.phase("receiver and notifier"):
            procs.append(spawn_module(["services.notify"], notify_env, work / "notify.log"))
            wait_for_port(rport, receiver, "the receiver", 30)
            wait_for_port(nport, procs[-1], "the notifier", 60)
        receiver_url = f"http://127.0.0.1:{rport}"
        notify_url = f"http://127.0.0.1:{nport}"
        last_arrivals: list[float] = []

        async def pf_round(i: int) -> float:
            unit = f"bench{i}"
            headers = {"Authorization": f"Bearer {issue_token(work / 'keys', UserRole.SUPERVISOR)}"}
            async with httpx.AsyncClient(timeout=30) as http:
                body = {"webhooks": [{"url": f"{receiver_url}/{unit}"}]}
                r = await http.put(f"{notify_url}/v1/units/{unit}/subscriptions", json=body, headers=headers)
                r.raise_for_status()
                events = escalations(unit, count)
                started = time.perf_counter()
                for lo in range(0, count, 256):
                    await asyncio.gather(*(
                        js.publish(event_subject(e.programme_id, e.unit_id, e.type), e.model_dump_json().encode(),
                                   headers={"Nats-Msg-Id": e.event_id})
                        for e in events[lo : lo + 256]
                    ))  # fmt: skip
                done = await wait_count(http, receiver_url, unit, count)
            last_arrivals.append(done - started)
            return count / (done - started)

        raw_rates, pf_rates = await interleaved(rounds, lambda i: raw_round(receiver_url, count, i), pf_round)
        await nc.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
        server.stop()
        if database is not None:
            await pg.drop_database(database)
    result.raw_rate, result.policyflow_rate = median(raw_rates), median(pf_rates)
    result.extra.update(
        deliveries_per_round=count, rounds=rounds, concurrency=CONCURRENCY,
        raw_spread=spread(raw_rates), policyflow_spread=spread(pf_rates),
        last_arrival_s=round(median(last_arrivals), 2),
        durability="nats sync_interval=always; the notifier's "
        + ("SQLite at synchronous=FULL" if database is None else "PostgreSQL (synchronous_commit on)"),
    )  # fmt: skip
    return result


def spawn_module(argv: list[str], env: dict[str, str], log: Any) -> Any:
    import subprocess

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", *argv], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def receiver_main(port: int) -> None:
    """A webhook receiver that answers 200 and counts distinct delivery ids per path."""
    seen: dict[str, set[str]] = {}
    app = FastAPI()

    @app.post("/{path}")
    async def hook(path: str, request: Request) -> Response:
        await request.body()
        seen.setdefault(path, set()).add(request.headers.get(DELIVERY_HEADER, ""))
        return Response(status_code=200)

    @app.get("/count/{path}")
    async def counted(path: str) -> int:
        return len(seen.get(path, ()))

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__" and sys.argv[1:2] == ["receiver"]:
    receiver_main(int(sys.argv[2]))
