"""The programme's own calendar as a Temporal Schedule, on the real dev server (the time-skipping
server has no schedules): a trigger records the latest bulletin, a backfill over a year records
exactly that year's dates once each, running them again records nothing twice, pause shows paused;
the events fold into the progress read model's calendar view."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

from nats.js import JetStreamContext
from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleBackfill, ScheduleOverlapPolicy

from contracts.calendar_facts import CALENDAR_FACTS
from contracts.events import Event
from contracts.figures import SHANGHAI
from contracts.programme_calendar import (
    CalendarSpan,
    ProgrammeCalendar,
    between,
    calendar_schedule_id,
    calendar_stream,
)
from services.assignment.schedules import schedule_of
from services.progress import readmodel
from services.progress.programme_calendar import CAL
from services.progress.store import create_tables
from services.shared.db import make_engine
from tests.integration.conftest import Kit, read_stream

TYPES = {cls.TYPE for cls in CALENDAR_FACTS}


def key_of(e: Event) -> str:
    p = e.payload
    kind = {"BulletinIssued": "bulletin", "ScoresSnapshotted": "snapshot", "EvaluationOpened": "evaluation"}[e.type]
    return f"{kind}:{p['period'] if kind == 'bulletin' else p['year']}"


async def calendar_events(js: JetStreamContext, programme_id: str) -> list[Event]:
    return [e for e in await read_stream(js) if e.type in TYPES and e.payload["programme_id"] == programme_id]


async def wait_for_keys(js: JetStreamContext, programme_id: str, keys: set[str], timeout: float = 90) -> list[Event]:
    """The programme's calendar events once every one of `keys` is among them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        events = await calendar_events(js, programme_id)
        if keys <= {key_of(e) for e in events}:
            return events
        assert asyncio.get_running_loop().time() < deadline, f"waited for {keys}, have {[key_of(e) for e in events]}"
        await asyncio.sleep(0.2)


def latest_quarter_issued(at: dt.datetime) -> str:
    """The quarter whose bulletin (10 days after it ends, 09:00 China time) is the latest by `at`."""
    best = ""
    for year in (at.year - 1, at.year):
        for q, (month, day, next_year) in enumerate(((4, 10, 0), (7, 10, 0), (10, 10, 0), (1, 10, 1)), start=1):
            if dt.datetime(year + next_year, month, day, 9, tzinfo=SHANGHAI) <= at:
                best = max(best, f"{year}-Q{q}")
    return best


async def test_trigger_backfill_and_pause_record_each_date_once(dev_kit: Kit, tmp_path: Path) -> None:
    client, js = dev_kit.client, dev_kit.js
    programme_id = f"cal-{uuid.uuid4().hex[:8]}"
    this_year = dt.datetime.now(SHANGHAI).year
    year = this_year - 1  # the year backfilled: wholly past, whatever today is
    # The snapshot and the evaluation share a bulletin's date, so every date has a bulletin to trigger.
    calendar = ProgrammeCalendar(snapshot_on="01-10", evaluation_opens_on="10-10")
    span = CalendarSpan(programme_id=programme_id, calendar=calendar, start_year=this_year - 2,
                        end_year=this_year + 9, evaluation_years=[year])  # fmt: skip
    handle = await client.create_schedule(calendar_schedule_id(programme_id), schedule_of(span, dev_kit.task_queue))
    try:
        before = dt.datetime.now(SHANGHAI)
        await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
        after = dt.datetime.now(SHANGHAI)
        periods = {latest_quarter_issued(before), latest_quarter_issued(after)}
        events = await calendar_events(js, programme_id)
        deadline = asyncio.get_running_loop().time() + 90
        while not [e for e in events if e.type == "BulletinIssued"]:
            assert asyncio.get_running_loop().time() < deadline, "no BulletinIssued after the trigger"
            await asyncio.sleep(0.2)
            events = await calendar_events(js, programme_id)
        [bulletin] = [e for e in events if e.type == "BulletinIssued"]
        assert bulletin.payload["period"] in periods
        assert (bulletin.programme_id, bulletin.assignment_id) == (calendar_stream(programme_id), None)
        triggered = {key_of(e) for e in events}

        start = dt.datetime(year, 1, 1, tzinfo=SHANGHAI)
        end = dt.datetime(year + 1, 1, 1, tzinfo=SHANGHAI)
        backfill = ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
        await handle.backfill(backfill)
        expected = {f"bulletin:{year - 1}-Q4", f"snapshot:{year - 1}", f"bulletin:{year}-Q1", f"bulletin:{year}-Q2",
                    f"bulletin:{year}-Q3", f"evaluation:{year}"}  # fmt: skip
        events = await wait_for_keys(js, programme_id, expected | triggered)
        backfilled = [key_of(e) for e in events if key_of(e) not in triggered]
        assert sorted(backfilled) == sorted(expected)  # those periods, each once

        # The same again (a backfill, a trigger), then the start year's dates as a marker: the record
        # workflow takes its signals in order, so once the marker's events are in, the repeats were handled.
        # A backfilled run's workflow id is its date's: the repeat can start only once the first has finished.
        dates = len({o.due_at for o in between(span, start, end)})  # runs per backfill of the year
        await wait_for_runs_done(dev_kit, programme_id, runs=1 + dates)
        await handle.backfill(backfill)
        await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
        marker = {f"bulletin:{year - 1}-Q1", f"bulletin:{year - 1}-Q2", f"bulletin:{year - 1}-Q3"}
        await wait_for_runs_done(dev_kit, programme_id, runs=2 + 2 * dates)
        marker_start = dt.datetime(year - 1, 1, 1, tzinfo=SHANGHAI)
        await handle.backfill(ScheduleBackfill(start_at=marker_start, end_at=start - dt.timedelta(days=2),
                                               overlap=ScheduleOverlapPolicy.ALLOW_ALL))  # fmt: skip
        events = await wait_for_keys(js, programme_id, marker)
        keys = [key_of(e) for e in events]
        assert sorted(keys) == sorted(expected | triggered | marker), keys  # nothing recorded twice
        assert [e.seq for e in events] == list(range(len(events)))  # one stream key, no gaps
        assert len({e.event_id for e in events}) == len(events)

        await handle.pause(note="春节暂停")
        state = (await handle.describe()).schedule.state
        assert (state.paused, state.note) == (True, "春节暂停")
        await handle.unpause(note="恢复")
        assert not (await handle.describe()).schedule.state.paused

        # The progress read model shows them: the latest bulletin, the evaluation open until its year's snapshot.
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'progress.db'}")
        await create_tables(engine)
        stream = await read_stream(js)
        await readmodel.apply_messages(engine, [(i + 1, e.model_dump_json().encode()) for i, e in enumerate(stream)])
        await readmodel.apply_messages(engine, [(len(stream) + 1, events[0].model_dump_json().encode())])
        async with engine.connect() as conn:
            rows = (await conn.execute(CAL.select().where(CAL.c.programme_id == programme_id))).mappings().all()
        assert sorted(r["key"] for r in rows) == sorted(keys)
        await engine.dispose()
    finally:
        await handle.delete()


async def wait_for_runs_done(kit: Kit, programme_id: str, runs: int, timeout: float = 90) -> None:
    """Every run the schedule started has finished (their hand-overs to the record workflow are done)."""
    prefix = f"{calendar_schedule_id(programme_id)}-run"
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        desc = await kit.client.get_schedule_handle(calendar_schedule_id(programme_id)).describe()
        running = [
            a for a in desc.info.running_actions
            if isinstance(a, ScheduleActionExecutionStartWorkflow) and a.workflow_id.startswith(prefix)
        ]  # fmt: skip
        if not running and desc.info.num_actions >= runs:
            return
        started = f"{desc.info.num_actions} of {runs} started"
        assert asyncio.get_running_loop().time() < deadline, f"runs still going: {running}, {started}"
        await asyncio.sleep(0.2)
