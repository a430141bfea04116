"""A scripted programme year (2027) for indicators, scores and exports: three districts on two
tasks, with dated facts whose figures are worked out by hand in tests/integration/test_outcomes.py.

alpha accepts on time, plans one task late, reports one quarter late and misses one (yellow),
passes verification; beta accepts late, is otherwise on time, fails verification and misses two of
its three targets; gamma never accepts (red on both acceptances). 2027 is a five-year evaluation
year: the calendar opens it on 1 November, alpha (task 14, twice) and beta (task 14) send their
self-evaluations, and the verifiers score alpha's with its verification (88).
"""

from __future__ import annotations

import datetime as dt
import json

from contracts import events as ev
from contracts.api import ProgrammeImport
from contracts.base import SYSTEM_ACTOR, Actor, OverdueLevel, Role, UserRole
from contracts.calendar_facts import EvaluationOpened
from contracts.catalog import Division, Programme, Responsibility, Schedule, Task, TaskGroup, Unit, UnitKind
from contracts.ids import assignment_id
from contracts.indicators import IndicatorSpec, ProgrammeOutcomes
from contracts.programme_calendar import calendar_stream

PROGRAMME = "oc-2027"
UNITS = ("alpha", "beta", "gamma")
GREEN, WATER, RETROFIT, FOREST = "green_share", "water_ok", "retrofit", "forest"
OUTCOMES = ProgrammeOutcomes(
    example=True,
    note="scripted test indicators",
    indicators=[
        IndicatorSpec(id=GREEN, name="绿色建筑占比", measure="%", tasks=[14], roles=[Role.RESPONSIBLE],
                      aggregation="mean", targets={2027: 90}, goal_year=2025, goal=100),
        IndicatorSpec(id=WATER, name="节水型区县占比", measure="%", tasks=[28], roles=[Role.RESPONSIBLE],
                      aggregation="share_at_or_above", threshold=1, targets={2027: 50}, goal_year=2035, goal=100),
        IndicatorSpec(id=RETROFIT, name="既有建筑改造面积", measure="万平方米", tasks=[14], aggregation="sum",
                      targets={2027: 100}, goal_year=2025, goal=500),
        IndicatorSpec(id=FOREST, name="森林覆盖率", measure="%", tasks=[14], aggregation="latest",
                      targets={2027: 56}, goal_year=2035, goal=57),
    ],
)  # fmt: skip

NAMES = {"alpha": "甲区", "beta": "乙区", "gamma": "丙区"}
GROUPS = {14: (4, "推动绿色建筑发展", "建设高品质绿色建筑"), 28: (6, "推进美丽乡村建设", "推进县域节水型社会建设")}
TITLE, DOCUMENT_NO = "测试方案", "测试〔2027〕1号"


def catalogue() -> ProgrammeImport:
    """The programme as the assignment service's registry would hold it once imported: the units'
    names (甲区, 乙区, 丙区) and the two tasks' groups, for the pages and the bulletin."""
    groups = [TaskGroup(no=g, title=title, tasks=[Task(no=t, title=task, text=f"{task}。")])
              for t, (g, title, task) in GROUPS.items()]  # fmt: skip
    rows = [Responsibility(task_no=t, unit_id=u, role=Role.RESPONSIBLE, horizon_year=2030)
            for t in GROUPS for u in UNITS]  # fmt: skip
    return ProgrammeImport(
        programme_id=PROGRAMME,
        programme=Programme(document_no=DOCUMENT_NO, title=TITLE, groups=groups),
        units=[Unit(unit_id=u, name=NAMES[u], kind=UnitKind.DISTRICT) for u in UNITS],
        division=Division(example=True, note="scripted test division", responsibilities=rows),
        schedule=Schedule(start_year=2027, evaluation_years=[2027]),
    )


SUPERVISOR = Actor(sub="supervisor", role=UserRole.SUPERVISOR)
VERIFIER = Actor(sub="verifier", role=UserRole.VERIFIER)


def at(day: str, hour: int = 2) -> dt.datetime:
    """A moment of `day` (YYYY-MM-DD), `hour` UTC (10:00 in Shanghai at the default)."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=dt.UTC)


ACCEPTANCE = ev.Deadline(key="acceptance", kind="acceptance", due=dt.date(2027, 1, 15), year=2027)
PLAN = ev.Deadline(key="annual_plan:2027", kind="annual_plan", due=dt.date(2027, 2, 10), year=2027)
Q1 = ev.Deadline(key="report:2027-Q1", kind="quarterly_report", due=dt.date(2027, 4, 15), year=2027, period="2027-Q1")
Q2 = ev.Deadline(key="report:2027-Q2", kind="quarterly_report", due=dt.date(2027, 7, 15), year=2027, period="2027-Q2")


def _dept(unit: str) -> Actor:
    return Actor(sub=f"department:{unit}", role=UserRole.DEPARTMENT, unit_id=unit)


def _targets(**targets: float) -> list[ev.IndicatorTarget]:
    return [ev.IndicatorTarget(id=k, name=k, target=v) for k, v in targets.items()]


def _values(**values: float) -> list[ev.IndicatorValue]:
    return [ev.IndicatorValue(id=k, name=k, value=v) for k, v in values.items()]


def _plan(targets: list[ev.IndicatorTarget]) -> ev.AnnualPlanSubmitted:
    m = [ev.Milestone(title="m", due=dt.date(2027, 6, 30))]
    return ev.AnnualPlanSubmitted(year=2027, revision=1, milestones=m, indicators=targets, closes=[PLAN.key])


def _report(period: str, values: list[ev.IndicatorValue], closes: str) -> ev.ProgressReported:
    return ev.ProgressReported(year=2027, period=period, percent=50, narrative="进展", indicator_values=values,
                               closes=[closes])  # fmt: skip


def _escalated(deadline: ev.Deadline, level: OverdueLevel) -> ev.SupervisionEscalated:
    return ev.SupervisionEscalated(deadline=deadline, level=level, working_days_overdue=12)


def _started(unit: str, accepted: str) -> list[tuple[dt.datetime, ev.Fact, Actor]]:
    return [
        (at("2027-01-04", 1), ev.AssignmentCreated(task_title="t", role=Role.RESPONSIBLE, start_year=2027,
                                                   horizon_year=2030, opens=[ACCEPTANCE]), SYSTEM_ACTOR),
        (at(accepted or "2027-01-05"), ev.AssignmentAccepted(year=2027, closes=[ACCEPTANCE.key], opens=[PLAN]),
         _dept(unit)),
    ]  # fmt: skip


def _approved(day: str) -> tuple[dt.datetime, ev.Fact, Actor]:
    return at(day), ev.AnnualPlanApproved(year=2027, revision=1, opens=[Q1, Q2]), SUPERVISOR


def _self_evaluation(revision: int, score: float, text: str) -> ev.SelfEvaluationSubmitted:
    return ev.SelfEvaluationSubmitted(year=2027, revision=revision, score=score, text=text)


EVALUATION_OPENS = dt.datetime(2027, 11, 1, 1, tzinfo=dt.UTC)  # 09:00 in Shanghai, the calendar's default


def script() -> dict[tuple[int, str], list[tuple[dt.datetime, ev.Fact, Actor]]]:
    a, b = _dept("alpha"), _dept("beta")
    never = _started("gamma", "")[:1]
    red = (at("2027-02-20"), _escalated(ACCEPTANCE, OverdueLevel.RED), SYSTEM_ACTOR)
    failed = ev.VerificationFailed(year=2027, findings="佐证不足", rework_due=dt.date(2028, 1, 20))
    return {
        (14, "alpha"): [*_started("alpha", "2027-01-05"),
            (at("2027-02-01"), _plan(_targets(green_share=92, retrofit=60)), a), _approved("2027-02-03"),
            (at("2027-04-10"), _report("2027-Q1", _values(green_share=93, retrofit=30, forest=55.0), Q1.key), a),
            (at("2027-07-20"), _report("2027-Q2", _values(green_share=95, retrofit=70, forest=55.8), Q2.key), a),
            (at("2027-11-15"), _self_evaluation(1, 85, "初稿"), a),
            (at("2027-11-20"), _self_evaluation(2, 90, "绿色建筑占比达到 95%，既有建筑改造 70 万平方米。"), a),
            (at("2027-12-10"), ev.VerificationPassed(year=2027), VERIFIER),
            (at("2027-12-10", 3), ev.EvaluationRecorded(year=2027, score=88, findings="自评属实"), VERIFIER)],
        (28, "alpha"): [*_started("alpha", "2027-01-05"),
            (at("2027-02-20"), _plan(_targets(water_ok=1)), a), _approved("2027-02-22"),
            (at("2027-04-12"), _report("2027-Q1", _values(water_ok=1), Q1.key), a),
            (at("2027-08-01"), _escalated(Q2, OverdueLevel.YELLOW), SYSTEM_ACTOR)],
        (14, "beta"): [*_started("beta", "2027-01-20"),
            (at("2027-02-08"), _plan(_targets(green_share=90, retrofit=50)), b), _approved("2027-02-09"),
            (at("2027-04-14"), _report("2027-Q1", _values(green_share=85, retrofit=20, forest=55.2), Q1.key), b),
            (at("2027-07-10"), _report("2027-Q2", _values(green_share=88, retrofit=45), Q2.key), b),
            (at("2027-11-25"), _self_evaluation(1, 80, "基本完成年度目标。"), b),
            (at("2027-12-12"), failed, VERIFIER)],
        (28, "beta"): [*_started("beta", "2027-01-20"),
            (at("2027-02-09"), _plan(_targets(water_ok=1)), b), _approved("2027-02-10"),
            (at("2027-04-14"), _report("2027-Q1", _values(water_ok=0), Q1.key), b),
            (at("2027-07-14"), _report("2027-Q2", _values(water_ok=1), Q2.key), b)],
        (14, "gamma"): [*never, red],
        (28, "gamma"): [*never, red],
    }  # fmt: skip


def events() -> list[ev.Event]:
    """The programme's import (with its indicators) first, then every assignment's facts and the
    calendar's opening of the evaluation by time."""
    imported = ev.ProgrammeImported(document_no=DOCUMENT_NO, title=TITLE, task_count=30,
                                    responsibility_count=6, content_sha256="ab" * 32, outcomes=OUTCOMES)  # fmt: skip
    out = [ev.make_event(imported, seq=0, occurred_at=at("2027-01-04", 0), programme_id=PROGRAMME, actor=SUPERVISOR)]
    opened = EvaluationOpened(programme_id=PROGRAMME, year=2027, due_at=EVALUATION_OPENS)
    calendar = ev.make_event(opened, seq=0, occurred_at=EVALUATION_OPENS, programme_id=calendar_stream(PROGRAMME),
                             actor=SYSTEM_ACTOR)  # fmt: skip
    timed: list[tuple[dt.datetime, str, ev.Event]] = [(EVALUATION_OPENS, calendar.event_id, calendar)]
    for (task, unit), facts in script().items():
        aid = assignment_id(PROGRAMME, task, unit)
        for seq, (when, fact, actor) in enumerate(facts):
            e = ev.make_event(fact, seq=seq, occurred_at=when, programme_id=PROGRAMME, actor=actor,
                              assignment_id=aid, task_no=task, unit_id=unit)  # fmt: skip
            timed.append((when, e.event_id, e))
    return out + [e for _, _, e in sorted(timed, key=lambda t: (t[0], t[1]))]


async def register(assignment_db_url: str) -> None:
    """Store catalogue() in the assignment service's database, as an import would (its event is the
    scripted one in events(), so nothing is published)."""
    from services.assignment import store
    from services.shared.db import make_engine

    engine = make_engine(assignment_db_url)
    try:
        body = catalogue()
        fact = events()[0].payload
        await store.insert_programme(engine, body, store.content_sha256(body), json.dumps(fact), SUPERVISOR.sub)
    finally:
        await engine.dispose()
