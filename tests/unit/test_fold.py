"""The fold (contracts/fold.py): what each fact does to an assignment's state, and how
`event_and_fact` reads an event from its JSON."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from contracts import calendar_facts as cf
from contracts import division_facts as dv
from contracts import events as ev
from contracts.base import SYSTEM_ACTOR, Actor, OverdueLevel, Role, Stage, UserRole
from contracts.fold import AssignmentState, LastReport, advance, apply, event_and_fact, fold

T0 = dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC)
DEPT = Actor(sub="department:yuzhong", role=UserRole.DEPARTMENT, unit_id="yuzhong")
AID = "cq-2022-79.t14.yuzhong"


def deadline(key: str, due: dt.date = dt.date(2026, 2, 3)) -> ev.Deadline:
    return ev.Deadline(key=key, kind="annual_plan", due=due, year=2026)


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
        ev.TaskSummarySubmitted(year=2030, revision=1, text="汇总"),
        ev.ProgrammeImported(document_no="渝府办发〔2022〕79号", title="t", task_count=30, responsibility_count=1,
                             content_sha256="cd" * 32),
        *change_facts(),
        ev.DeadlinesRecomputed(year=2027, source="国办发明电〔2026〕7号", opens=[deadline("acceptance")],
                               moved=[ev.MovedDeadline(key="acceptance", old_due=dt.date(2026, 2, 3),
                                                       new_due=dt.date(2026, 2, 3))]),
        ev.WorkingCalendarPublished(year=2027, revision=1, holidays=[dt.date(2027, 1, 1)], workdays=[],
                                    source="国办发明电〔2026〕7号"),
        *division_facts(),
        *calendar_facts(),
        ev.SelfEvaluationSubmitted(year=2026, revision=1, score=90, text="自评"),
    ]  # fmt: skip


def calendar_facts() -> list[ev.Fact]:
    """The programme calendar's facts: programme-level, they change no assignment."""
    at = dt.datetime(2027, 1, 10, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    return [
        cf.BulletinIssued(programme_id="cq-2022-79", period="2026-Q4", due_at=at),
        cf.ScoresSnapshotted(programme_id="cq-2022-79", year=2026, due_at=at),
        cf.EvaluationOpened(programme_id="cq-2022-79", year=2030, due_at=at),
    ]


def division_facts() -> list[ev.Fact]:
    """The changes to the division (tests/unit/test_fold_changes.py says what each does)."""
    line = dv.DivisionLine(assignment_id=AID, task_no=14, unit_id="yuzhong", role=Role.LEAD, horizon_year=2030)
    handover = dv.Handover(
        from_assignment_id=AID,
        from_unit_id="yuzhong",
        to_assignment_id="p.t14.jiangbei",
        to_unit_id="jiangbei",
        reason="职能调整",
    )
    return [
        dv.AssignmentRevised(reason="revision 1", revision=1, changed=["role"], role=Role.COOPERATING),
        dv.AssignmentReassigned(handover=handover),
        dv.AssignmentRemoved(revision=2, reason="removed in revision 2"),
        dv.ProgrammeRevised(revision=2, reason="清单修订", content_sha256="ef" * 32, removed=[line]),
    ]  # fmt: skip


def change_facts() -> list[ev.Fact]:
    """Issue 21's facts: an extension asked, approved, another refused, a reminder, an early closure."""
    moved = deadline("report:2026-Q1", dt.date(2026, 5, 8))
    return [
        ev.ExtensionRequested(n=1, deadline_key="report:2026-Q1", due=dt.date(2026, 4, 15),
                              new_due=dt.date(2026, 5, 8), reason="数据未出"),
        ev.ExtensionApproved(n=1, deadline_key="report:2026-Q1", old_due=dt.date(2026, 4, 15),
                             new_due=dt.date(2026, 5, 8), opens=[moved]),
        ev.ExtensionRequested(n=2, deadline_key="report:2026-Q1", due=dt.date(2026, 5, 8),
                              new_due=dt.date(2026, 6, 8), reason="再延"),
        ev.ExtensionRefused(n=2, deadline_key="report:2026-Q1", reason="不予延期"),
        ev.ExtensionRequested(n=3, deadline_key="report:2026-Q1", due=dt.date(2026, 5, 8),
                              new_due=dt.date(2026, 6, 1), reason="三延"),
        ev.ManualReminderIssued(message="请尽快报送", deadline=moved),
        ev.AssignmentClosed(year=2026, reason="任务已提前完成", closes=["report:2026-Q1"]),
    ]  # fmt: skip


def test_extensions_move_a_deadline_and_lapse_when_it_closes() -> None:
    facts = [ev.AssignmentCreated(task_title="t", role=Role.LEAD, start_year=2026, horizon_year=2030,
                                  opens=[deadline("report:2026-Q1", dt.date(2026, 4, 15))]),
             *change_facts()]  # fmt: skip
    s = _running(facts)
    assert s[1].open_extension("report:2026-Q1") is not None and s[1].extensions[0].status == "open"
    assert s[2].deadlines["report:2026-Q1"].due == dt.date(2026, 5, 8)
    assert (s[2].extensions[0].status, s[2].extensions[0].approved_due) == ("approved", dt.date(2026, 5, 8))
    assert (s[4].extensions[1].status, s[4].extensions[1].decision_reason) == ("refused", "不予延期")
    assert s[4].deadlines["report:2026-Q1"].due == dt.date(2026, 5, 8)  # a refusal moves nothing
    assert s[6].manual_reminders == 1
    closed = s[7]
    assert (closed.stage, closed.deadlines, closed.closure and closed.closure["reason"]) == (
        Stage.COMPLETED, {}, "任务已提前完成")  # fmt: skip
    assert [x.status for x in closed.extensions] == ["approved", "refused", "lapsed"]


def _running(facts: list[ev.Fact]) -> list[AssignmentState]:
    out: list[AssignmentState] = []
    state: AssignmentState | None = None
    for i, f in enumerate(facts):
        state = apply(state, event(f, i))
        out.append(state)
    return out


def event(fact: ev.Fact, seq: int) -> ev.Event:
    at, actor = T0 + dt.timedelta(days=seq), DEPT if seq % 2 else SYSTEM_ACTOR
    return ev.make_event(fact, seq=seq, occurred_at=at, programme_id="cq-2022-79", actor=actor, assignment_id=AID,
                         task_no=14, unit_id="yuzhong")  # fmt: skip


def events() -> list[ev.Event]:
    return [event(f, i) for i, f in enumerate(every_fact())]


def states() -> list[AssignmentState]:
    """The state after each of events(), each a copy (apply)."""
    out: list[AssignmentState] = []
    state: AssignmentState | None = None
    for e in events():
        state = apply(state, e)
        out.append(state)
    return out


def test_every_fact_type_is_covered() -> None:
    assert {type(f) for f in every_fact()} == set(ev.FACT_TYPES.values())


def test_each_fact_changes_what_it_says() -> None:
    s = states()
    c = s[0]
    assert (c.role, c.task_title, c.year, c.horizon_year) == (Role.LEAD, "促进绿色建筑", 2026, 2030)
    assert (c.stage, list(c.deadlines), c.last_seq) == (Stage.ASSIGNED, ["acceptance"], 0)
    assert (s[1].stage, s[1].year, list(s[1].deadlines)) == (Stage.PLANNING, 2026, ["annual_plan:2026"])
    assert s[2].reminders == 1
    assert (s[3].overdue_level, s[3].escalations_total, s[3].escalations) == (
        OverdueLevel.RED, 1, {"annual_plan:2026": OverdueLevel.RED})  # fmt: skip
    assert (s[4].stage, s[4].plan_revision) == (Stage.PLAN_SUBMITTED, 1)
    assert s[4].plan == {
        "year": 2026, "revision": 1, "status": "submitted", "milestones": [{"title": "m", "due": "2026-06-01"}],
        "indicators": [{"name": "占比", "unit": "%", "target": 70.5}],
    }  # fmt: skip
    assert s[4].plan is not None
    returned = {**s[4].plan, "status": "returned", "reasons": "指标不具体"}
    assert (s[5].stage, s[5].plans_returned, s[5].plan) == (Stage.PLANNING, 1, returned)
    assert s[6].plan is not None and (s[6].plan_revision, s[6].plan["milestones"]) == (2, [])
    assert (s[7].stage, s[7].deadlines, s[7].plan["status"]) == (Stage.IMPLEMENTING, {}, "approved")  # type: ignore[index]
    assert (s[8].escalations, s[8].overdue_level) == ({}, OverdueLevel.NONE)
    assert (s[9].reports, s[9].percent) == (1, 40.0)
    assert s[9].last_report == LastReport(year=2026, period="2026-Q1", percent=40.0, narrative="ok",
                                          reported_at=T0 + dt.timedelta(days=9),
                                          indicator_values=[{"name": "占比", "value": 1e-05}],
                                          evidence=[{"name": "a.pdf", "sha256": "ab" * 32, "size": 10}])  # fmt: skip
    assert (s[10].cooperating_reports, s[10].percent) == (1, 40.0)  # a cooperating unit's percent is not the lead's
    assert s[11].stage == Stage.VERIFYING
    assert (s[12].stage, s[12].verifications_failed) == (Stage.IMPLEMENTING, 1)
    failed_at = (T0 + dt.timedelta(days=12)).isoformat()
    assert s[12].last_verification == {"year": 2026, "decision": "fail", "findings": "缺少佐证",
                                       "rework_due": "2026-12-01", "at": failed_at}  # fmt: skip
    assert s[14].last_verification is not None and s[14].last_verification["decision"] == "pass"
    assert s[14].years_verified == [2026]
    assert s[15].evaluations == {2026: 88.5}
    last = s[-1].self_evaluation
    assert last is not None and (last["year"], last["score"], last["text"]) == (2026, 90, "自评")
    assert (s[16].stage, s[16].year, s[16].plan, s[16].plan_revision, s[16].percent) == (
        Stage.PLANNING, 2027, None, 0, 0.0)  # fmt: skip
    assert (s[17].stage, s[17].deadlines, s[17].escalations) == (Stage.COMPLETED, {}, {})
    assert (s[18].stage, s[18].cancel_reason) == (Stage.CANCELLED, "撤销")
    summed_at = (T0 + dt.timedelta(days=19)).isoformat()
    assert s[19].summary == {"year": 2030, "revision": 1, "text": "汇总", "at": summed_at}
    programme_wide = s[20]  # a programme's fact touches no assignment field but the position
    assert programme_wide.model_dump(exclude={"last_seq", "updated_at"}) == s[19].model_dump(
        exclude={"last_seq", "updated_at"})  # fmt: skip
    assert (programme_wide.last_seq, programme_wide.updated_at) == (20, T0 + dt.timedelta(days=20))


def test_the_nearest_deadline_and_the_highest_level_win() -> None:
    opens = [deadline("b", dt.date(2026, 5, 1)), deadline("a", dt.date(2026, 3, 1))]
    f = ev.AssignmentCreated(task_title="t", role=Role.RESPONSIBLE, start_year=2026, horizon_year=2030, opens=opens)
    later = [
        ev.SupervisionEscalated(deadline=deadline("b"), level=OverdueLevel.YELLOW, working_days_overdue=1),
        ev.SupervisionEscalated(deadline=deadline("a"), level=OverdueLevel.BLUE, working_days_overdue=1),
        ev.EscalationCleared(deadline_key="b"),
    ]
    s = fold([event(f, 0)] + [event(x, i + 1) for i, x in enumerate(later)][:2])
    assert s is not None and s.overdue_level == OverdueLevel.YELLOW
    assert s.next_deadline() == deadline("a", dt.date(2026, 3, 1))
    s = advance(s, event(later[2], 3))
    assert s.overdue_level == OverdueLevel.BLUE


def test_a_state_reads_back_from_its_json_as_it_was() -> None:
    """The read models store the state as JSON and fold on from what they read back."""
    for s in states():
        assert AssignmentState.model_validate_json(s.model_dump_json()) == s


def test_advance_folds_in_place_and_ignores_what_it_has_seen() -> None:
    evs = events()
    state = advance(None, evs[0])
    assert advance(state, evs[1]) is state and state.stage == Stage.PLANNING
    before = state.model_copy(deep=True)
    assert advance(state, evs[0]) is state and advance(state, evs[1]) == before  # at or below last_seq
    assert fold(evs) == states()[-1]


def test_event_and_fact_reads_the_event_and_its_fact() -> None:
    for e in events():
        text = e.model_dump_json()
        for data in (text, text.encode()):
            typed, fact = event_and_fact(data)
            assert fact == e.fact() and type(fact) is type(e.fact())
            assert typed.model_dump(exclude={"payload"}) == e.model_dump(exclude={"payload"})


def test_an_old_schema_version_is_left_to_the_upcasters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ev.YearStarted, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(ev.UPCASTERS, ("YearStarted", 1), lambda p: {**p, "year": p["year"] + 1})
    text = event(ev.YearStarted(year=2027), 3).model_dump_json()
    text = text.replace('"schema_version":2', '"schema_version":1')  # written before the schema moved on
    e, fact = event_and_fact(text)
    assert fact is None  # left to event.fact(), which upcasts
    assert e.fact() == ev.YearStarted(year=2028)


def test_what_cannot_be_read_raises_where_it_did() -> None:
    text = events()[1].model_dump_json()
    unknown = text.replace('"type":"AssignmentAccepted"', '"type":"SomethingElse"')
    e, fact = event_and_fact(unknown)  # a valid envelope: the unknown type fails in fact()
    assert fact is None and e.type == "SomethingElse"
    with pytest.raises(KeyError):
        e.fact()
    e, fact = event_and_fact(text.replace('"year":2026', '"year":"soon"'))
    assert fact is None
    with pytest.raises(ValidationError):
        e.fact()
    with pytest.raises(ValidationError):
        event_and_fact(text.replace('"seq":1', '"seq":-1'))
