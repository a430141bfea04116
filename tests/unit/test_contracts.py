"""Contracts: deterministic ids, frozen facts, upcasting, and the one fold."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from contracts import events as ev
from contracts.base import SYSTEM_ACTOR, Actor, OverdueLevel, Stage, UserRole
from contracts.fold import apply, fold
from contracts.ids import assignment_id, parse_assignment_id, workflow_id
from contracts.subjects import event_subject
from services.cli.main import app

T0 = dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC)
AID = assignment_id("cq-2022-79", 14, "yuzhong")
DEPT = Actor(sub="department:yuzhong", role=UserRole.DEPARTMENT, unit_id="yuzhong")


def make(fact: ev.Fact, seq: int, actor: Actor = SYSTEM_ACTOR) -> ev.Event:
    return ev.make_event(
        fact,
        seq=seq,
        occurred_at=T0 + dt.timedelta(days=seq),
        programme_id="cq-2022-79",
        actor=actor,
        assignment_id=AID,
        task_no=14,
        unit_id="yuzhong",
    )


def deadline(key: str, due: dt.date) -> ev.Deadline:
    return ev.Deadline(key=key, kind="annual_plan", due=due, year=2026)


def test_ids_are_deterministic_and_parse_back() -> None:
    assert AID == "cq-2022-79.t14.yuzhong"
    assert parse_assignment_id(AID) == ("cq-2022-79", 14, "yuzhong")
    assert parse_assignment_id("../etc/passwd") is None
    assert workflow_id(AID) == "assignment-cq-2022-79.t14.yuzhong"
    e1, e2 = make(ev.AssignmentAccepted(year=2026), 3), make(ev.AssignmentAccepted(year=2026), 3)
    assert e1.event_id == e2.event_id == "cq-2022-79.t14.yuzhong#000003"


def test_subject_tokens_never_contain_dots() -> None:
    subject = event_subject("cq.2022", "yu.zhong", "ProgressReported")
    assert subject == "pf.events.cq_2022.yu_zhong.ProgressReported"


def test_facts_are_frozen_and_strict() -> None:
    fact = ev.AssignmentAccepted(year=2026)
    with pytest.raises(ValidationError):
        fact.year = 2027  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ev.AssignmentAccepted(year=2026, surprise=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ev.Evidence(name="a.pdf", sha256="not-hex", size=1)


def test_event_round_trips_through_json() -> None:
    event = make(ev.ProgressReported(year=2026, period="2026-Q1", percent=30, narrative="进展顺利"), 5, DEPT)
    again = ev.Event.model_validate_json(event.model_dump_json())
    assert again == event
    assert isinstance(again.fact(), ev.ProgressReported)
    assert again.fact().narrative == "进展顺利"  # type: ignore[attr-defined]


def test_upcaster_chain_is_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    class AcceptedV2(ev.AssignmentAccepted):
        SCHEMA_VERSION = 2
        note: str

    monkeypatch.setitem(ev.FACT_TYPES, "AssignmentAccepted", AcceptedV2)
    monkeypatch.setitem(ev.UPCASTERS, ("AssignmentAccepted", 1), lambda p: {**p, "note": "upcast"})
    old = make(ev.AssignmentAccepted(year=2026), 1)
    fact = old.fact()
    assert isinstance(fact, AcceptedV2) and fact.note == "upcast"


def lifecycle() -> list[ev.Event]:
    return [
        make(
            ev.AssignmentCreated(
                task_title="促进绿色建筑高质量发展",
                role="responsible",
                start_year=2026,
                horizon_year=2027,
                opens=[deadline("acceptance", dt.date(2026, 1, 16))],
            ),
            0,
        ),
        make(
            ev.AssignmentAccepted(
                year=2026, closes=["acceptance"], opens=[deadline("annual_plan:2026", dt.date(2026, 2, 3))]
            ),
            1,
            DEPT,
        ),
        make(
            ev.AnnualPlanSubmitted(
                year=2026, revision=1, milestones=[ev.Milestone(title="m", due=dt.date(2026, 6, 1))], indicators=[]
            ),
            2,
            DEPT,
        ),
        make(
            ev.SupervisionEscalated(
                deadline=deadline("annual_plan:2026", dt.date(2026, 2, 3)),
                level=OverdueLevel.YELLOW,
                working_days_overdue=10,
            ),
            3,
        ),
        make(ev.AnnualPlanReturned(year=2026, revision=1, reasons="指标不具体"), 4),
        make(
            ev.AnnualPlanSubmitted(
                year=2026, revision=2, milestones=[ev.Milestone(title="m", due=dt.date(2026, 6, 1))], indicators=[]
            ),
            5,
            DEPT,
        ),
        make(ev.AnnualPlanApproved(year=2026, revision=2, closes=["annual_plan:2026"]), 6),
        make(ev.EscalationCleared(deadline_key="annual_plan:2026"), 7),
        make(ev.ProgressReported(year=2026, period="2026-Q1", percent=40, narrative="ok"), 8, DEPT),
        make(ev.VerificationRequested(year=2026, reason="declared_done"), 9, DEPT),
        make(ev.VerificationPassed(year=2026), 10),
        make(ev.YearStarted(year=2027), 11),
    ]


def test_fold_follows_the_lifecycle() -> None:
    events = lifecycle()
    states = []
    state = None
    for e in events:
        state = apply(state, e)
        states.append(state)
    assert states[0].stage == Stage.ASSIGNED and "acceptance" in states[0].deadlines
    assert states[1].stage == Stage.PLANNING and "acceptance" not in states[1].deadlines
    assert states[3].overdue_level == OverdueLevel.YELLOW
    assert states[4].stage == Stage.PLANNING and states[4].plans_returned == 1
    assert states[6].stage == Stage.IMPLEMENTING and states[6].plan["status"] == "approved"  # type: ignore[index]
    assert states[7].overdue_level == OverdueLevel.NONE
    assert states[8].last_report is not None and states[8].percent == 40
    assert states[10].years_verified == [2026]
    final = states[-1]
    assert (final.stage, final.year, final.plan) == (Stage.PLANNING, 2027, None)


def test_fold_ignores_redelivered_events() -> None:
    events = lifecycle()
    once = fold(events)
    twice = fold(events[:9] + events[:9] + events[9:])
    assert once == twice
    assert once is not None and once.reports == 1


def test_contracts_export_writes_every_schema(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["contracts", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ev.FACT_TYPES:
        schema = json.loads((tmp_path / "events" / f"{name}.schema.json").read_text())
        assert schema["x-event-type"] == name
    assert (tmp_path / "api" / "ReportBody.schema.json").exists()
    assert (tmp_path / "commands" / "SubmitAnnualPlan.schema.json").exists()


def test_apply_leaves_its_input_alone_and_advance_agrees() -> None:
    events = lifecycle()
    before = fold(events[:8])
    assert before is not None
    snapshot = before.model_copy(deep=True)
    after = apply(before, events[8])
    assert before == snapshot and after.reports == before.reports + 1
    stepwise = None
    for e in events:
        stepwise = apply(stepwise, e)
    assert fold(iter(events)) == stepwise
