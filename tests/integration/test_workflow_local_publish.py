"""Publishing through a local activity (patch `publish-local-activity`), on real servers.

A command's events are published inside the workflow task that took the command. If that task
fails after publishing (the worker dies), its redo makes the same event ids with a later
workflow time; the stream keeps the first copy, and the workflow must adopt it so that its
state stays the fold of what consumers received. If the redo took its inputs in another order,
the stream's copy may hold another fact: the one this run decided is then decided or queued again.
"""

from __future__ import annotations

import datetime as dt

from contracts.base import Actor, UserRole
from contracts.commands import AcceptAssignment, AssignmentSpec, CooperatingReport
from contracts.events import AssignmentAccepted, CooperatingReportReceived, Event, Fact, make_event
from contracts.fold import AssignmentState, fold
from contracts.subjects import EVENT_STREAM, event_subject
from tests.integration.conftest import PROGRAMME, Kit, department, idle, make_spec, plan
from workflows import decisions
from workflows.calendar import WorkingCalendar, china_year
from workflows.workflows import PATCH_LOCAL_PUBLISH, AssignmentWorkflow


async def test_a_new_run_publishes_without_activity_tasks(kit: Kit) -> None:
    year = (await kit.today()).year
    unit = "bishan"
    h = await kit.start(make_spec(unit, year, year + 1))
    await h.execute_update(AssignmentWorkflow.accept, AcceptAssignment(actor=department(unit)))
    await h.execute_update(AssignmentWorkflow.submit_plan, plan(unit, year))
    await idle(h)
    history = await h.fetch_history()
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert "activity_task_scheduled_event_attributes" not in kinds
    patches = [
        e for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and PATCH_LOCAL_PUBLISH.encode() in e.marker_recorded_event_attributes.SerializeToString()
    ]  # fmt: skip
    assert len(patches) == 1
    events = await kit.events(h.id.removeprefix("assignment-"))
    assert [e.type for e in events] == ["AssignmentCreated", "AssignmentAccepted", "AnnualPlanSubmitted"]
    assert [e.seq for e in events] == [0, 1, 2]


async def test_a_stored_copy_from_a_failed_task_is_adopted(kit: Kit) -> None:
    """The stream already holds the accept event as an earlier, failed attempt made it."""
    today = await kit.today()
    year = today.year
    unit = "tongliang"
    spec = make_spec(unit, year, year + 1)
    h = await kit.start(spec)
    before = await idle(h)
    me = department(unit)
    cmd = AcceptAssignment(actor=me)
    # What the failed attempt decided: the same command, a few seconds earlier, and (as when the
    # redo falls on the next day) a first annual plan due one day later than the redo will say.
    fact = decided_accept(spec, before, today)
    moved = [d.model_copy(update={"due": d.due + dt.timedelta(days=1)}) for d in fact.opens]
    earlier = await publish_as_failed_task(kit, spec, fact.model_copy(update={"opens": moved}), 1, me)

    result = await h.execute_update(AssignmentWorkflow.accept, cmd)
    assert result.event_ids == [earlier.event_id]
    accepted = await idle(h)
    events = await kit.events(spec.assignment_id)
    assert [e.seq for e in events] == [0, 1]
    assert events[1].model_dump_json() == earlier.model_dump_json()  # the first copy stayed
    # The workflow's state is the fold of the stream, with the adopted deadline and time.
    assert as_state(accepted) == fold(events)
    assert accepted.deadlines[moved[0].key].due == moved[0].due
    assert accepted.updated_at == earlier.occurred_at

    # And it goes on from there: the next event follows in sequence, once.
    await h.execute_update(AssignmentWorkflow.submit_plan, plan(unit, year))
    after = await idle(h)
    events = await kit.events(spec.assignment_id)
    assert [e.seq for e in events] == [0, 1, 2] and len({e.event_id for e in events}) == 3
    assert as_state(after) == fold(events)


def as_state(status: AssignmentState) -> AssignmentState:
    """The folded part of a status (without the workflow's own extras)."""
    return AssignmentState(**{name: getattr(status, name) for name in AssignmentState.model_fields})


async def publish_as_failed_task(kit: Kit, spec: AssignmentSpec, fact: Fact, seq: int, actor: Actor) -> Event:
    """Put `fact` in the stream under the assignment's `seq`, as a failed workflow task would have."""
    event = make_event(
        fact, seq=seq, occurred_at=(await kit.now()) - dt.timedelta(seconds=7), programme_id=spec.programme_id,
        actor=actor, assignment_id=spec.assignment_id, task_no=spec.task_no, unit_id=spec.unit_id,
    )  # fmt: skip
    ack = await kit.js.publish(
        event_subject(spec.programme_id, spec.unit_id, event.type),
        event.model_dump_json().encode(),
        stream=EVENT_STREAM,
        headers={"Nats-Msg-Id": event.event_id},
    )
    assert not ack.duplicate
    return event


def decided_accept(spec: AssignmentSpec, before: AssignmentState, today: dt.date) -> AssignmentAccepted:
    """The accept a workflow task decides for this assignment today."""
    year = today.year
    cal = WorkingCalendar([china_year(y) for y in (year - 1, year, year + 1, year + 2)])
    cmd = AcceptAssignment(actor=department(spec.unit_id))
    (fact,) = decisions.decide(before, cal, spec.schedule.rules, cmd, today)
    assert isinstance(fact, AssignmentAccepted)
    return fact


def relayed_report(unit: str, year: int) -> CooperatingReport:
    return CooperatingReport(
        from_assignment_id=f"{PROGRAMME}.t14.{unit}", from_unit_id=unit, year=year, period=f"{year}-Q1",
        percent=30.0, narrative="on track",
    )  # fmt: skip


async def test_a_command_whose_id_holds_another_fact_is_decided_again(kit: Kit) -> None:
    """The failed task took a signal first: its relayed report holds the id the accept makes now."""
    year = (await kit.today()).year
    unit = "dazu"
    spec = make_spec(unit, year, year + 1)
    h = await kit.start(spec)
    await idle(h)
    report = relayed_report("rongchang", year)
    relay = Actor(sub=f"assignment:{report.from_assignment_id}", role=UserRole.SYSTEM, unit_id="rongchang")
    stored = await publish_as_failed_task(kit, spec, CooperatingReportReceived(**report.model_dump()), 1, relay)

    result = await h.execute_update(AssignmentWorkflow.accept, AcceptAssignment(actor=department(unit)))
    events = await kit.events(spec.assignment_id)
    assert [e.type for e in events] == ["AssignmentCreated", "CooperatingReportReceived", "AssignmentAccepted"]
    assert events[1].model_dump_json() == stored.model_dump_json()
    assert result.event_ids == [events[2].event_id] and result.stage == "planning"
    assert as_state(await idle(h)) == fold(events)


async def test_a_relayed_report_whose_id_holds_another_fact_is_kept(kit: Kit) -> None:
    """The failed task took the accept first; the redo takes the lead's relayed report first."""
    today = await kit.today()
    spec = make_spec("qijiang", today.year, today.year + 1)
    h = await kit.start(spec)
    accepted = decided_accept(spec, await idle(h), today)
    await publish_as_failed_task(kit, spec, accepted, 1, department(spec.unit_id))

    report = relayed_report("wansheng", today.year)
    await h.signal(AssignmentWorkflow.cooperating_report, report)
    after = await idle(h)
    events = await kit.events(spec.assignment_id)
    assert [e.type for e in events] == ["AssignmentCreated", "AssignmentAccepted", "CooperatingReportReceived"]
    assert events[2].fact().model_dump(include=set(CooperatingReport.model_fields)) == report.model_dump()
    assert as_state(after) == fold(events)
