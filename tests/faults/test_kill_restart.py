"""kill -9 and restart, in turn, the worker, the audit service (its ledger consumer, caught mid-batch:
its disk is stalled until it holds deliveries it cannot commit), nats-server and the Temporal
server, and pause the progress service with SIGSTOP, while a programme of many assignments is driven
over HTTP by clients that retry with the same Idempotency-Key; then check that nothing was lost,
doubled or forged, and print the figures.

Short form (part of `make test`): 3 tasks x 8 units driven through one programme year (into the
next: continue-as-new), each fault once. `FAULTS_ROUNDS=N`: 3 tasks x 10 units, each fault N times
and N programme years per assignment (more commands, longer under fault).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx
import pytest

from tests.faults.figures import say, table
from tests.faults.harness import HUMAN_ROLES, Fault, FaultStack, duplicates, rounds
from tests.faults.scenario import Driver, programme
from tests.support.clock import china_today

pytestmark = pytest.mark.timeout(600 * rounds())  # generous: a noisy 2-core machine, N rounds

COMPARED = ("stage", "year", "overdue_level", "percent")
COUNTS = {  # workflow status `counts` key -> replayed state field
    "reports": "reports",
    "cooperating_reports": "cooperating_reports",
    "plans_returned": "plans_returned",
    "verifications_failed": "verifications_failed",
    "reminders": "reminders",
    "escalations": "escalations_total",
}
NOT_COMMANDS = {"AssignmentCreated", "ProgrammeImported"}  # caused by import and dispatch, not by updates


async def inject(stack: FaultStack, n: int, load: asyncio.Task[None]) -> list[tuple[Fault, bool]]:
    """Each fault in turn, `n` times; returns each fault and whether commands were in flight then."""
    out: list[tuple[Fault, bool]] = []
    for r in range(n):
        # The long form also crashes the read model mid-batch (from round 2): nothing is lost, but its
        # unacknowledged deliveries come back only after the consumer's ack wait (60 s), so it is slow.
        extra = ("progress-crash",) if r == 1 else ()
        for target in ("worker", "audit", "nats-server", "temporal", "progress", *extra):
            await asyncio.sleep(0.5)
            busy = not load.done()
            if target == "progress-crash":
                fault = await stack.stall_then_kill_and_restart("progress", "progress.sqlite")
            elif target == "worker":
                fault = await stack.kill_and_restart(target)
            elif target == "audit":
                fault = await stack.stall_then_kill_and_restart(target, "audit.sqlite")
            elif target == "progress":
                fault = await stack.pause(target, 2.0)
            else:
                fault = await stack.kill_and_restart_server(target)
            out.append((fault, busy))
    return out


async def test_nothing_lost_or_doubled_under_kill_restart_and_pause(
    fault_stack: FaultStack, http: httpx.AsyncClient
) -> None:
    n = rounds()
    year = china_today().year
    horizon = year + n  # the last driven year is year + n - 1; passing it opens year + n
    body = programme(tasks=3, units=8 if n == 1 else 10, start_year=year, horizon=horizon, tag="kill")
    pid = body.programme_id
    driver = Driver(fault_stack, http)
    t0 = time.monotonic()
    aids = await driver.import_and_dispatch(body)
    say(
        f"\nkill/restart scenario: {len(aids)} assignments driven through {year}..{horizon - 1} into {horizon}, "
        f"{n} round(s) of faults"
    )
    load = asyncio.create_task(driver.run(aids, year, horizon - 1, reports=1 if n == 1 else 2))
    faults = await inject(fault_stack, n, load)
    await load
    load_s = time.monotonic() - t0
    settled = await fault_stack.quiesce(http, pid, timeout=240)
    quiesce_s = time.monotonic() - t0 - load_s

    # ---- what the stream, the publisher's acks and the ledger hold ---------------------------------
    stream = await fault_stack.stream_events(pid)
    stream_ids = [e.event_id for _, e in stream]
    # The worker publishes every event: the assignments' and the programme's ProgrammeImported.
    published = {
        str(line["event_id"])
        for line in fault_stack.log_lines("worker")
        if line.get("event") == "event_published"
        and (str(line["event_id"]).startswith(f"{pid}.") or line["event_id"] == f"programme:{pid}#000000")
    }
    ledger = await fault_stack.ledger(http, pid)
    ledger_ids = [row["event_id"] for row in ledger]
    verify = await fault_stack.verify(http)
    gaps = await fault_stack.gaps(http, pid)

    # ---- every assignment: replayed ledger state = workflow status = read models ---------------------
    replayed = await fault_stack.replay(http, pid)
    status = await fault_stack.status_page(http, pid)
    reports = fault_stack.read_model_reports(pid)
    workflows = dict(
        zip(aids, await asyncio.gather(*(fault_stack.workflow_status(http, a) for a in aids)), strict=True)
    )
    diverged: list[str] = []
    for aid, wf in workflows.items():
        r = replayed.get(aid)
        if r is None:
            diverged.append(f"{aid}: not in replay")
            continue
        diverged += [f"{aid}.{k}: workflow {wf[k]!r} replay {r[k]!r}" for k in COMPARED if wf[k] != r[k]]
        diverged += [
            f"{aid}.counts.{k}: workflow {wf['counts'][k]} replay {r[f]}"
            for k, f in COUNTS.items()
            if wf["counts"][k] != r[f]
        ]
        s = status.get(aid, {})
        diverged += [f"{aid}.{k}: workflow {wf[k]!r} status {s.get(k)!r}" for k in COMPARED if wf[k] != s.get(k)]
        if reports.get(aid) != (wf["counts"]["reports"], wf["percent"]):
            diverged.append(
                f"{aid}: read model (reports, percent) {reports.get(aid)} workflow "
                f"{(wf['counts']['reports'], wf['percent'])}"
            )

    # ---- every command: took effect once, or was refused with a reason the client saw ----------------
    accepted_ids = [i for c in driver.commands if c.ok for i in c.event_ids]
    ledger_count = Counter(ledger_ids)
    not_once = {i: ledger_count[i] for i in set(accepted_ids) if ledger_count[i] != 1}
    by_commands = {
        row["event_id"] for row in ledger if row["type"] not in NOT_COMMANDS and _actor_role(row) in HUMAN_ROLES
    }
    untold = sorted(by_commands - set(accepted_ids))  # took effect, but no client was told so
    unexpected = [c for c in driver.commands if c.ok != c.expect_ok]
    silent_refusals = [c for c in driver.commands if not c.ok and not c.detail]
    server_errors = sum(s == "500" for c in driver.commands for s in c.statuses)

    table(
        "faults injected",
        [
            (f"{f.what} {f.target}", f"down {f.down_s:.1f}s{'' if busy else ' (load already finished)'}")
            for f, busy in faults
        ],
    )
    table("commands", driver.figures().items())
    table(
        "events",
        [
            ("acknowledged to the publishing activity (distinct ids)", len(published)),
            ("messages in the stream", len(stream)),
            ("distinct event ids in the stream", len(set(stream_ids))),
            ("ledger rows", len(ledger)),
            (
                "duplicate event ids in the stream / ledger",
                f"{len(duplicates(stream_ids))} / {len(duplicates(ledger_ids))}",
            ),
            ("chain verifies", f"{verify['ok']} ({verify.get('count')} entries in the whole ledger)"),
            ("per-assignment sequence gaps seen by the ledger", len(gaps)),
            (
                "stream last seq = read model position",
                f"{settled['stream_last_seq']} = {settled['read_model_position']}",
            ),
            (
                "assignments: replay = workflow = read models",
                f"{len(workflows) - len({d.split(':')[0] for d in diverged})} of {len(workflows)}",
            ),
            ("final stages", dict(Counter(w["stage"] for w in workflows.values()))),
            (
                "events lost / doubled / diverged",
                f"{len(set(published) - set(ledger_ids))} / {len(duplicates(ledger_ids))} / {len(diverged)}",
            ),
            ("load + faults, then quiescence (s)", f"{load_s:.1f}, {quiesce_s:.1f}"),
        ],
    )

    assert len(faults) == 5 * n + (n > 1)
    assert set(published) == set(stream_ids), f"acked but not in the stream: {set(published) - set(stream_ids)}"
    assert not duplicates(stream_ids), duplicates(stream_ids)
    assert sorted(ledger_ids) == sorted(set(stream_ids)), "ledger rows differ from the stream's events"
    assert not duplicates(ledger_ids), duplicates(ledger_ids)
    assert verify["ok"], verify
    assert not gaps, gaps[:5]
    assert not diverged, diverged[:20]
    assert all((w["stage"], w["year"]) == ("planning", horizon) for w in workflows.values())
    assert not not_once, not_once
    assert not untold, untold[:20]
    assert not unexpected, [(c.assignment_id, c.name, c.final, c.detail, c.statuses) for c in unexpected][:10]
    assert not silent_refusals
    assert all(c.final is not None for c in driver.commands)
    assert server_errors == 0, "a 500 is never the right answer"


def _actor_role(row: dict[str, object]) -> str:
    return str(json.loads(str(row["canonical"]))["actor"]["role"])
