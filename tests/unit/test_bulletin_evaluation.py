"""The five-year evaluation in the bulletin (contracts.evaluation), on a small scripted evaluation year
(2030): three units, their self-evaluations and the verifiers' scores, and the calendar's dates of
the evaluation's opening and the year's score snapshot that closes it; worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.bulletin import parse_period
from contracts.evaluation import evaluation_figures, excerpt
from contracts.events import AssignmentCancelled, EvaluationRecorded, Event, Fact, SelfEvaluationSubmitted
from contracts.figures import SHANGHAI
from contracts.fold import AssignmentState, advance
from contracts.indicators import ProgrammeOutcomes
from contracts.programme_calendar import RecordedDate
from contracts.records import Recorded
from services.progress.bulletin import Sources, compose, page
from services.progress.dashboard_sources import unit_order
from services.shared import access
from tests.e2e.support import EventFactory

pytestmark = pytest.mark.unit
P = "ev-2030"
NAMES = {
    "fgw": {"name": "市发展改革委", "kind": "department"},
    "banan": {"name": "巴南区", "kind": "district"},
    "dadukou": {"name": "大渡口区", "kind": "district"},
}
LONG = "本年度完成既有建筑节能改造一百二十万平方米，新建建筑全面执行绿色建筑标准，并建立了长效管理机制。"


def moment(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=SHANGHAI)


def on(f: EventFactory, fact: Fact, day: str) -> Event:
    return f.next(fact).model_copy(update={"occurred_at": moment(day)})


def events() -> list[Event]:
    fgw, dadukou, banan, gone = (EventFactory(P, 1, "fgw"), EventFactory(P, 1, "dadukou"), EventFactory(P, 2, "banan"),
                                 EventFactory(P, 1, "banan"))  # fmt: skip
    out = [e for f in (fgw, dadukou, banan, gone) for e in (f.created(2030), f.accepted(2030))]
    return [
        *out,
        on(gone, AssignmentCancelled(reason="职责调整"), "2030-06-01"),
        on(fgw, SelfEvaluationSubmitted(year=2030, revision=1, score=80, text="初稿"), "2030-11-10"),
        on(fgw, SelfEvaluationSubmitted(year=2030, revision=2, score=85, text=LONG), "2030-11-20"),
        on(banan, SelfEvaluationSubmitted(year=2030, revision=1, score=70, text="基本完成"), "2030-12-01"),
        on(fgw, EvaluationRecorded(year=2030, score=88, findings="属实"), "2031-01-15"),
        on(banan, EvaluationRecorded(year=2030, score=75), "2031-02-10"),  # after the evaluation closed
    ]


def folded(upto: dt.datetime | None = None) -> list[Recorded]:
    by_id: dict[str, AssignmentState] = {}
    for e in events():
        if upto is None or e.occurred_at <= upto:
            assert e.assignment_id is not None
            by_id[e.assignment_id] = advance(by_id.get(e.assignment_id), e)
    return [Recorded.model_validate(s.model_dump()) for _, s in sorted(by_id.items())]


def dated(kind: str, day: str) -> RecordedDate:
    due = moment(day, 9)
    return RecordedDate(key=f"{kind}:2030", kind=kind, year=2030, period="2030", due_at=due, recorded_at=due,
                        event_id=f"calendar-{kind}")  # fmt: skip


DATES = [dated("evaluation", "2030-11-01"), dated("snapshot", "2031-01-31")]
ORDER = unit_order(NAMES)


def rows(period: str, at: dt.datetime, states: list[Recorded] | None = None) -> list[tuple[object, ...]] | None:
    ev = evaluation_figures(parse_period(period), DATES, folded() if states is None else states, at, ORDER)
    if ev is None:
        return None
    return [(u.unit_id, t.task_no, t.self_score, t.revision, t.excerpt, t.scores) for u in ev.units for t in u.tasks]


def test_after_it_closed_each_unit_in_order_with_its_latest_self_evaluation_and_score() -> None:
    ev = evaluation_figures(parse_period("2030"), DATES, folded(), moment("2031-06-30"), ORDER)
    assert ev is not None
    # closed at the snapshot: banan's score of 10 February came after it; the cancelled assignment is not listed
    assert (ev.as_of, ev.opened_at, ev.closed_at) == (moment("2031-01-31", 9), moment("2030-11-01", 9),
                                                      moment("2031-01-31", 9))  # fmt: skip
    assert (ev.assignments, ev.submitted, ev.scored) == (3, 2, 1)
    assert rows("2030", moment("2031-06-30")) == [  # a department first, then districts by name (大 before 巴)
        ("fgw", 1, 85.0, 2, "本年度完成既有建筑节能改造一百二十万平方米，新建建筑全面执行绿色建筑标准，并建…", [88.0]),
        ("dadukou", 1, None, None, "", []),
        ("banan", 2, 70.0, 1, "基本完成", []),
    ]
    assert len(excerpt(LONG)) == 40 and excerpt("  两行\n文字 ") == "两行 文字"


def test_while_open_it_reads_as_of_the_moment_and_the_same_from_a_replay() -> None:
    early = moment("2030-11-15")
    assert rows("2030-Q4", early) == [("fgw", 1, 80.0, 1, "初稿", []), ("dadukou", 1, None, None, "", []),
                                      ("banan", 2, None, None, "", [])]  # fmt: skip
    # The states folded only up to the moment (an as-of replay of the ledger) give the same figures.
    for at in (early, moment("2030-12-31"), moment("2031-01-20")):
        live = evaluation_figures(parse_period("2030"), DATES, folded(), at, ORDER)
        assert live == evaluation_figures(parse_period("2030"), DATES, folded(at), at, ORDER)
    ev = evaluation_figures(parse_period("2030"), DATES, folded(), moment("2031-01-20"), ORDER)
    assert ev is not None and (ev.closed_at, ev.submitted, ev.scored) == (None, 2, 1)


def test_left_out_where_the_calendar_did_not_open_it_in_the_period() -> None:
    assert rows("2030-Q3", moment("2031-06-30")) is None  # opened on 1 November: the fourth quarter's
    assert rows("2029", moment("2031-06-30")) is None
    assert rows("2030", moment("2030-10-31")) is None  # not recorded yet
    assert rows("2031", moment("2031-06-30")) is None  # no evaluation that year
    assert evaluation_figures(parse_period("2030"), [], folded(), moment("2031-06-30")) is None


def test_the_bulletin_page_carries_the_section_or_says_nobody_submitted() -> None:
    sources = Sources(title="测试方案", document_no="测试〔2030〕1号", groups={}, titles={1: "绿色建筑", 2: "节水"},
                      names=NAMES, dates=DATES)  # fmt: skip
    b = compose(P, ProgrammeOutcomes(), folded(), sources, parse_period("2030"), None, moment("2031-06-30"))
    html = page(b)
    assert "五、五年评估（2030 年）" in html and "六、指标进展" in html and "七、逾期事项清单" in html
    assert b.evaluation_summary() == (
        "2030 年五年评估于 2030-11-01 09:00 开始，2031-01-31 09:00 结束。"
        "截至 2031-01-31 09:00，3 项任务中 2 项已提交自评，1 项已由核验人员评分。"
    )
    assert [(r.unit, r.span, r.task, r.self_evaluation, r.scores) for r in b.evaluation_rows()] == [
        ("市发展改革委", 1, "1. 绿色建筑", "85 分（第 2 版）", "88 分"),
        ("大渡口区", 1, "1. 绿色建筑", "未提交", "尚未评分"),
        ("巴南区", 1, "2. 节水", "70 分（第 1 版）", "尚未评分"),
    ]
    section = html[html.index('id="bulletin-evaluation"') :]
    assert section.index("市发展改革委") < section.index("大渡口区") < section.index("巴南区")
    assert 'data-unit="fgw"' in section and "初稿" not in section and "尚无单位提交自评" not in html
    quiet = compose(P, ProgrammeOutcomes(), folded(), sources, parse_period("2030-Q4"), None, moment("2030-11-05"))
    assert quiet.evaluation_summary().endswith("0 项已提交自评，0 项已由核验人员评分。尚无单位提交自评。")
    before = compose(P, ProgrammeOutcomes(), folded(), sources, parse_period("2030-Q3"), None, moment("2031-06-30"))
    assert before.evaluation is None and "五年评估" not in page(before) and "五、指标进展" in page(before)


def test_a_scoped_supervisor_gets_the_bulletin_of_its_area() -> None:
    """A district's 督查室 (unit:banan) and a task's supervisor (task 1): the figures and the evaluation
    rows are the area's assignments only, and the period line names the area; the city's has all."""
    sources = Sources(title="测试方案", document_no="测试〔2030〕1号", groups={}, titles={1: "绿色建筑", 2: "节水"},
                      names=NAMES, dates=DATES)  # fmt: skip
    period, now = parse_period("2030"), moment("2031-06-30")
    city = compose(P, ProgrammeOutcomes(), folded(), sources, period, None, now, access.Area(True))
    district = compose(
        P, ProgrammeOutcomes(), folded(), sources, period, None, now, access.Area(False, frozenset({"banan"}))
    )
    task = compose(
        P, ProgrammeOutcomes(), folded(), sources, period, None, now, access.Area(False, tasks=frozenset({(P, 1)}))
    )
    assert (city.figures.assignments, district.figures.assignments, task.figures.assignments) == (3, 1, 2)
    assert [r.unit for r in district.evaluation_rows()] == ["巴南区"]
    assert [r.unit for r in task.evaluation_rows()] == ["市发展改革委", "大渡口区"]
    assert (city.scope, district.scope, task.scope) == ("", " · 督查范围：巴南区", " · 督查范围：任务1")
    assert "督查范围：巴南区" in page(district) and "督查范围" not in page(city)
