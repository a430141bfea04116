"""A full disk under the audit ledger and the progress read model (each on its own small tmpfs):
commands are still taken and their events kept in the stream; the ledger and the read model stop,
say why on /readyz (503) and in one log line, and pick up by themselves when space returns,
with nothing lost.

A full disk under the NATS store (a tmpfs): JetStream refuses each publish (the workflows' publish
activities retry); the stream's write error sticks until nats-server restarts, which the launcher
(`Stack.restart_nats_if_store_failed`, run by `make up` every 5 s) does once there is room again;
then every accepted command's event is in the stream and the ledger.

Short form (part of `make test`): 1 task x 3 units, the disks full for one round of commands.
`FAULTS_ROUNDS=N`: 2 tasks x 4 units, N rounds of filling and freeing.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.subjects import AUDIT_DURABLE, READ_MODEL_DURABLE
from tests.faults.disks import fill, free, require_mount, small_disk
from tests.faults.figures import table
from tests.faults.harness import FaultStack, rounds
from tests.faults.scenario import Command, Driver, programme
from tests.support.clock import china_today
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(600 * rounds())


@pytest.fixture
async def small_disk_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FaultStack]:
    """A stack whose ledger and read model live on two 8 MiB tmpfs mounts."""
    require_mount()
    with small_disk(tmp_path / "ledger-disk", 8) as ledger, small_disk(tmp_path / "read-model-disk", 8) as models:
        monkeypatch.setenv("AUDIT_DATABASE_URL", f"sqlite:///{ledger}/audit.sqlite")
        monkeypatch.setenv("PROGRESS_DATABASE_URL", f"sqlite:///{models}/progress.sqlite")
        stack = FaultStack(tmp_path / "var")
        try:
            await stack.start()
            yield stack
        finally:
            await stack.stop()


async def ready(stack: FaultStack, http: httpx.AsyncClient, service: str) -> tuple[int, dict[str, Any]]:
    r = await http.get(f"{stack.url(service)}/readyz", timeout=10)
    return r.status_code, r.json()


async def test_full_disk_under_ledger_and_read_model_pauses_them_and_loses_nothing(
    small_disk_stack: FaultStack, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    stack = small_disk_stack
    n = rounds()
    year = china_today().year
    body = programme(tasks=1 if n == 1 else 2, units=3 if n == 1 else 4, start_year=year, horizon=year + 1, tag="disk")
    pid = body.programme_id
    driver = Driver(stack, http)
    aids = await driver.import_and_dispatch(body)
    await stack.quiesce(http, pid)
    disks = [tmp_path / "ledger-disk", tmp_path / "read-model-disk"]
    figures: list[tuple[str, object]] = []
    for r in range(n):
        marks = {name: stack.log_mark(name) for name in ("audit", "progress")}
        ledger_before = await stack.ledger_size(http)
        for disk in disks:
            fill(disk)
        t0 = time.monotonic()
        # Commands while the disks are full: each one is a workflow update, then an event in the stream.
        commands = [asyncio.create_task(one_step(driver, aid, r, year)) for aid in aids]

        async def both_paused() -> bool:
            answers = [await ready(stack, http, s) for s in ("audit", "progress")]
            return all(code == 503 and "disk full" in body["reason"] for code, body in answers)

        await until(both_paused, "ledger and read model saying their disk is full", 120, interval=0.2)
        paused_s = time.monotonic() - t0
        sent = await asyncio.gather(*commands)
        assert all(c.ok for c in sent), [(c.name, c.final, c.detail) for c in sent if not c.ok]
        code, audit_body = await ready(stack, http, "audit")
        assert code == 503 and "台账暂停写入" in audit_body["reason"], audit_body
        assert await stack.ledger_size(http) == ledger_before, "the ledger grew on a full disk"
        main_view = {"audit": AUDIT_DURABLE, "progress": READ_MODEL_DURABLE}
        for name, mark in marks.items():
            lines = [x for x in stack.log_since(name, mark) if x.get("event") == "consumer.disk_full"]
            said = Counter(x.get("consumer") for x in lines)  # the audit's access log pauses too
            assert said[main_view[name]] == 1 and max(said.values()) == 1, f"{name}: one disk_full line a view: {said}"
        t1 = time.monotonic()
        for disk in disks:
            free(disk)

        async def both_ready() -> bool:
            return all([(await ready(stack, http, s))[0] == 200 for s in ("audit", "progress")])

        await until(both_ready, "ledger and read model back after space returned", 120, interval=0.2)
        resumed_s = time.monotonic() - t1
        settled = await stack.quiesce(http, pid)
        for name, mark in marks.items():
            assert any(x.get("event") == "consumer.resumed" for x in stack.log_since(name, mark)), name
        figures += [
            (f"round {r + 1}: readyz 503 after the disks filled (s)", round(paused_s, 1)),
            (f"round {r + 1}: readyz 200 after space returned (s)", round(resumed_s, 1)),
            (f"round {r + 1}: events in stream / ledger", f"{settled['stream_distinct']} / {settled['ledger_rows']}"),
        ]
    verify = await stack.verify(http)
    assert verify["ok"] is True, verify
    stream_ids = {e.event_id for _, e in await stack.stream_events(pid)}
    ledger_ids = {row["event_id"] for row in await stack.ledger(http, pid)}
    assert stream_ids == ledger_ids, f"lost: {sorted(stream_ids - ledger_ids)[:5]}"
    status = await stack.status_page(http, pid)
    replayed = await stack.replay(http, pid)
    assert {a: status[a]["stage"] for a in aids} == {a: replayed[a]["stage"] for a in aids}
    table("full disk under the ledger and the read model", figures)


async def one_step(driver: Driver, aid: str, round_no: int, year: int) -> Command:
    """Round 0 accepts; later rounds submit the plan, then approve it, then report."""
    unit = aid.rsplit(".", 1)[1]
    p = f"/v1/assignments/{aid}"
    if round_no == 0:
        return await driver.send(aid, "accept", "progress", f"{p}/accept", "department", unit)
    if round_no == 1:
        plan = {"year": year, "milestones": [{"title": "里程碑", "due": f"{year}-12-15"}], "indicators": []}
        return await driver.send(aid, "submit_plan", "progress", f"{p}/plans", "department", unit, plan)
    if round_no == 2:
        approve = {"decision": "approve", "comment": "同意"}
        return await driver.send(aid, "review_plan", "progress", f"{p}/plans/{year}/review", "supervisor", body=approve)
    quarter = (china_today().month - 1) // 3 + 1
    report = {"period": f"{year}-Q{quarter}", "percent": min(100, 10 * round_no), "narrative": f"第{round_no}次"}
    return await driver.send(aid, "report_progress", "progress", f"{p}/reports", "department", unit, report)


@pytest.fixture
async def small_nats_disk_stack(tmp_path: Path) -> AsyncIterator[FaultStack]:
    """A stack whose JetStream store is a 24 MiB tmpfs (the stream limited to 4 MiB to fit it)."""
    require_mount()
    var = tmp_path / "var"
    with small_disk(var / "nats" / "jetstream", 24):
        stack = FaultStack(var)
        stack.stack.config.stream_max_bytes = 4 * 1024**2
        try:
            await stack.start()
            yield stack
        finally:
            await stack.stop()


async def test_full_disk_under_nats_refuses_publishes_and_the_launcher_restarts_it_when_space_returns(
    small_nats_disk_stack: FaultStack, http: httpx.AsyncClient
) -> None:
    stack = small_nats_disk_stack
    store = stack.var_dir / "nats" / "jetstream"
    conf = (stack.var_dir / "nats" / "nats.conf").read_text()
    limit = int(conf.split("max_file_store:")[1].split()[0])
    assert 4 * 1024**2 <= limit < 24 * 1024**2, f"max_file_store {limit} is not below the store's free space"
    year = china_today().year
    body = programme(tasks=1, units=3 * rounds(), start_year=year, horizon=year + 1, tag="natsdisk")
    pid = body.programme_id
    driver = Driver(stack, http)
    aids = await driver.import_and_dispatch(body)
    before = await stack.quiesce(http, pid)
    watching = asyncio.Event()

    async def launcher() -> None:  # what `make up` does every 5 s
        while not watching.is_set():
            await asyncio.to_thread(stack.stack.restart_nats_if_store_failed)
            await asyncio.sleep(1.0)

    watcher = asyncio.create_task(launcher())
    try:
        fill(store)
        t0 = time.monotonic()
        commands = [asyncio.create_task(one_step(driver, aid, 0, year)) for aid in aids]

        nats_log = stack.var_dir / "nats" / "nats.log"

        async def refused() -> bool:
            return "no space left on device" in nats_log.read_text(errors="replace")

        await until(refused, "JetStream refusing a publish on the full disk", 120, interval=0.5)
        down_s = time.monotonic() - t0
        free(store)
        t1 = time.monotonic()
        sent = await asyncio.gather(*commands)
        assert all(c.ok for c in sent), [(c.name, c.final, c.detail) for c in sent if not c.ok]
        after = await stack.quiesce(http, pid, timeout=240)
        back_s = time.monotonic() - t1
    finally:
        watching.set()
        await watcher
    assert stack.stack.nats_restarts >= 1, "the stream's write error was cleared without a restart?"
    accepted = [str(e.assignment_id) for _, e in await stack.stream_events(pid) if e.type == "AssignmentAccepted"]
    assert sorted(accepted) == sorted(aids), f"accepted but not in the stream once: {accepted}"
    assert after["ledger_rows"] == after["stream_distinct"] == after["stream_messages"]
    verify = await stack.verify(http)
    assert verify["ok"] is True, verify
    table(
        "full disk under the NATS store",
        [
            ("max_file_store (bytes) on a 24 MiB store", limit),
            ("disk filled -> first publish refused (s)", round(down_s, 1)),
            ("nats-server restarts", stack.stack.nats_restarts),
            ("space back -> every command's event in stream and ledger (s)", round(back_s, 1)),
            ("events: before / after", f"{before['stream_distinct']} / {after['stream_distinct']}"),
        ],
    )
