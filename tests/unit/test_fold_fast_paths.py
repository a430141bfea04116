"""The fold's fast paths change no output: `_set` is pydantic's assignment, `event_and_fact` is
`Event.model_validate_json` then `fact()`, and a fold over either gives the same state."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import events as ev
from contracts.base import SYSTEM_ACTOR, Actor, OverdueLevel, Role, Stage, UserRole
from contracts.fold import AssignmentState, LastReport, _last_report, _set, advance, event_and_fact
from services.audit.ledger import canonical_json

T0 = dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC)
DEPT = Actor(sub="department:yuzhong", role=UserRole.DEPARTMENT, unit_id="yuzhong")
AID = "cq-2022-79.t14.yuzhong"


def deadline(key: str) -> ev.Deadline:
    return ev.Deadline(key=key, kind="annual_plan", due=dt.date(2026, 2, 3), year=2026)


def every_fact() -> list[ev.Fact]:
    """One of each fact type, in an order a lifecycle could have them."""
    return [
        ev.AssignmentCreated(task_title="促进绿色建筑", role=Role.LEAD, start_year=2026, horizon_year=2030,
                             lead_assignment_id=None, evaluation_years=[2030], opens=[deadline("acceptance")]),
        ev.AssignmentAccepted(year=2026, closes=["acceptance"], opens=[deadline("annual_plan:2026")]),
        ev.ReminderIssued(deadline=deadline("annual_plan:2026")),
        ev.SupervisionEscalated(deadline=deadline("annual_plan:2026"), level=OverdueLevel.RED, working_days_overdue=3),
        ev.AnnualPlanSubmitted(year=2026, revision=1, milestones=[ev.Milestone(title="m", due=dt.date(2026, 6, 1))],
                               indicators=[ev.IndicatorTarget(name="占比", unit="%", target=70.5)]),
        ev.AnnualPlanReturned(year=2026, revision=1, reasons="指标不具体"),
        ev.AnnualPlanSubmitted(year=2026, revision=2, milestones=[], indicators=[]),
        ev.AnnualPlanApproved(year=2026, revision=2, closes=["annual_plan:2026"]),
        ev.EscalationCleared(deadline_key="annual_plan:2026"),
        ev.ProgressReported(year=2026, period="2026-Q1", percent=40, narrative="ok",
                            indicator_values=[ev.IndicatorValue(name="占比", value=1e-05)],
                            evidence=[ev.Evidence(name="a.pdf", sha256="ab" * 32, size=10)]),
        ev.CooperatingReportReceived(from_assignment_id="x", from_unit_id="jiangbei", year=2026, period="2026-Q1",
                                     percent=10, narrative="配合"),
        ev.VerificationRequested(year=2026, reason="declared_done"),
        ev.VerificationFailed(year=2026, findings="缺少佐证", rework_due=dt.date(2026, 12, 1)),
        ev.VerificationRequested(year=2026, reason="year_end"),
        ev.VerificationPassed(year=2026),
        ev.EvaluationRecorded(year=2026, score=88.5),
        ev.YearStarted(year=2027),
        ev.AssignmentCompleted(year=2030),
        ev.AssignmentCancelled(reason="撤销"),
        ev.ProgrammeImported(document_no="渝府办发〔2022〕79号", title="t", task_count=30, responsibility_count=1,
                             content_sha256="cd" * 32),
    ]  # fmt: skip


def events() -> list[ev.Event]:
    return [
        ev.make_event(f, seq=i, occurred_at=T0 + dt.timedelta(days=i, microseconds=i), programme_id="cq-2022-79",
                      actor=DEPT if i % 2 else SYSTEM_ACTOR, assignment_id=AID, task_no=14, unit_id="yuzhong")
        for i, f in enumerate(every_fact())
    ]  # fmt: skip


def test_every_fact_type_is_covered() -> None:
    assert {type(f) for f in every_fact()} == set(ev.FACT_TYPES.values())


def test_event_and_fact_is_model_validate_json_then_fact() -> None:
    for event in events():
        text = canonical_json(event)
        for data in (text, text.encode()):
            typed, fact = event_and_fact(data)
            plain = ev.Event.model_validate_json(data)
            assert fact is not None and fact == plain.fact() and type(fact) is type(plain.fact())
            assert typed.model_dump(exclude={"payload"}) == plain.model_dump(exclude={"payload"})


def test_a_fold_over_either_parse_is_the_same_state() -> None:
    by_typed: AssignmentState | None = None
    by_plain: AssignmentState | None = None
    for event in events():
        text = canonical_json(event)
        by_typed = advance(by_typed, *event_and_fact(text))
        by_plain = advance(by_plain, ev.Event.model_validate_json(text))
        assert by_typed.model_dump() == by_plain.model_dump()
        assert by_typed.model_fields_set == by_plain.model_fields_set


def test_an_old_schema_version_is_upcast_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ev.YearStarted, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(ev.UPCASTERS, ("YearStarted", 1), lambda p: {**p, "year": p["year"] + 1})
    text = canonical_json(ev.make_event(ev.YearStarted(year=2027), seq=3, occurred_at=T0, programme_id="p",
                                        actor=SYSTEM_ACTOR, assignment_id=AID, task_no=14, unit_id="u"))  # fmt: skip
    text = text.replace('"schema_version":2', '"schema_version":1')  # written before the schema moved on
    event, fact = event_and_fact(text)
    assert fact is None  # left to event.fact(), which upcasts
    assert event.fact() == ev.YearStarted(year=2028)


def test_what_the_one_pass_refuses_raises_as_before() -> None:
    text = canonical_json(events()[1])
    unknown = text.replace('"type":"AssignmentAccepted"', '"type":"SomethingElse"')
    event, fact = event_and_fact(unknown)  # a valid envelope: the unknown type fails in fact(), as before
    assert fact is None and event.type == "SomethingElse"
    with pytest.raises(KeyError):
        event.fact()
    bad_payload = text.replace('"year":2026', '"year":"soon"')
    event, fact = event_and_fact(bad_payload)
    assert fact is None
    with pytest.raises(ValidationError):
        event.fact()
    with pytest.raises(ValidationError):
        event_and_fact(text.replace('"seq":1', '"seq":-1'))


def blank() -> AssignmentState:
    return AssignmentState(assignment_id=AID, programme_id="p", task_no=14, unit_id="u")


VALUES: dict[str, Any] = {
    "role": Role.LEAD, "task_title": "t", "stage": Stage.VERIFYING, "year": 2027, "horizon_year": 2030,
    "lead_assignment_id": "x", "deadlines": {"k": deadline("k")}, "escalations": {"k": OverdueLevel.BLUE},
    "overdue_level": OverdueLevel.BLUE, "plan_revision": 2, "plan": {"a": 1},
    "last_report": LastReport(year=2026, period="Q1", percent=1.0, narrative="n", reported_at=T0), "percent": 5.0,
    "reports": 1, "cooperating_reports": 1, "plans_returned": 1, "verifications_failed": 1, "reminders": 1,
    "escalations_total": 1, "years_verified": [2026], "evaluations": {2030: 1.0}, "cancel_reason": "c",
    "last_seq": 4, "updated_at": T0, "assignment_id": "y", "programme_id": "q", "task_no": 3, "unit_id": "v",
}  # fmt: skip


def test_set_is_what_pydantic_assignment_does_for_every_field() -> None:
    assert set(VALUES) == set(AssignmentState.model_fields)
    for name, value in VALUES.items():
        by_pydantic, by_set = blank(), blank()
        setattr(by_pydantic, name, value)
        _set(by_set, **{name: value})
        assert by_set.__dict__ == by_pydantic.__dict__ and list(by_set.__dict__) == list(by_pydantic.__dict__)
        assert by_set.model_fields_set == by_pydantic.model_fields_set
        assert by_set.model_dump(exclude_unset=True) == by_pydantic.model_dump(exclude_unset=True)


def test_fact_classes_are_disjoint_so_the_folds_case_order_is_free() -> None:
    for a in ev.FACT_TYPES.values():
        for b in ev.FACT_TYPES.values():
            assert a is b or not issubclass(a, b)


@pytest.mark.parametrize("percent", [40, 40.0, 1e-05, 100])
def test_the_last_report_is_the_instance_validation_builds(percent: float) -> None:
    fact = ev.ProgressReported(year=2026, period="2026-Q1", percent=percent, narrative="按计划推进")
    values = {"year": fact.year, "period": fact.period, "percent": fact.percent, "narrative": fact.narrative,
              "reported_at": T0}  # fmt: skip
    fast, validated = _last_report(**values), LastReport(**values)
    assert type(fast) is LastReport
    assert list(fast.__dict__.items()) == list(validated.__dict__.items())
    assert [type(v) for v in fast.__dict__.values()] == [type(v) for v in validated.__dict__.values()]
    assert fast.model_fields_set == validated.model_fields_set
    assert (fast.__pydantic_extra__, fast.__pydantic_private__) == (validated.__pydantic_extra__, None)
    assert fast == validated and fast.model_dump_json() == validated.model_dump_json()
    state = advance(None, ev.make_event(fact, seq=3, occurred_at=T0, programme_id="p", actor=DEPT,
                                        assignment_id=AID, task_no=14, unit_id="yuzhong"))  # fmt: skip
    assert state.last_report is not None and list(state.last_report.__dict__.items()) == list(values.items())


def test_a_plans_lists_are_each_items_model_dump() -> None:
    plans = [f for f in every_fact() if isinstance(f, ev.AnnualPlanSubmitted)] + [
        ev.AnnualPlanSubmitted(year=2027, revision=1,
                               milestones=[ev.Milestone(title=f"第{q}季", due=dt.date(2027, q, 1)) for q in (3, 9)],
                               indicators=[ev.IndicatorTarget(name="面积", target=1e-05),
                                           ev.IndicatorTarget(name="占比", unit="%", target=100)])
    ]  # fmt: skip
    for fact in plans:
        state = advance(None, ev.make_event(fact, seq=1, occurred_at=T0, programme_id="p", actor=DEPT,
                                            assignment_id=AID, task_no=14, unit_id="yuzhong"))  # fmt: skip
        assert state.plan is not None
        assert state.plan["milestones"] == [m.model_dump(mode="json") for m in fact.milestones]
        assert state.plan["indicators"] == [i.model_dump(mode="json") for i in fact.indicators]
        dumps = [i.model_dump(mode="json") for i in fact.indicators]
        for got, want in zip(state.plan["indicators"], dumps, strict=True):
            assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
