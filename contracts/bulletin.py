"""A 督查通报's figures for a period (a quarter or a year) as of a moment: a pure function of the
assignments' dated records (contracts.records), like contracts.figures and contracts.scores, so a
bulletin made again later, or from the auditors' replay, says the same.

The period's deadlines are the scored ones (acceptance, annual plans, quarterly reports) due in it;
its escalations those raised in it; the overdue items every scored deadline past due and not met as
of the moment, whenever it fell due.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from contracts.base import OVERDUE_RANK, OverdueLevel
from contracts.figures import SHANGHAI, live
from contracts.records import Recorded
from contracts.scores import deadline_outcomes

PERIOD_PATTERN = r"^\d{4}(-Q[1-4])?$"
PERIOD_WORDS = "期间应写作 2026-Q4（季度）或 2026（年度） (a quarter such as 2026-Q4, or a year such as 2026)"
QUARTER_NAMES = "一二三四"
COLOURS = ("blue", "yellow", "red")


class Period(BaseModel):
    text: str  # "2026-Q4" or "2026"
    year: int
    quarter: int | None
    start: dt.date
    end: dt.date  # the last day, inclusive

    @property
    def label(self) -> str:
        return f"{self.year}年第{QUARTER_NAMES[self.quarter - 1]}季度" if self.quarter else f"{self.year}年度"

    def months(self) -> list[tuple[int, int]]:
        return [(self.year, m) for m in range(self.start.month, self.end.month + 1)]

    def holds(self, day: dt.date) -> bool:
        return self.start <= day <= self.end

    def closing(self) -> dt.datetime:
        """The end of the period's last day, Asia/Shanghai."""
        return dt.datetime.combine(self.end, dt.time(23, 59, 59, 999999), tzinfo=SHANGHAI)


def parse_period(text: str) -> Period:
    """`2026-Q4` or `2026`; ValueError in plain words for anything else."""
    text = text.strip()
    if not re.fullmatch(PERIOD_PATTERN, text) or not 2000 <= int(text[:4]) <= 2100:
        raise ValueError(f"无法识别的期间 {text!r}：{PERIOD_WORDS}")
    year = int(text[:4])
    if len(text) == 4:
        return Period(text=text, year=year, quarter=None, start=dt.date(year, 1, 1), end=dt.date(year, 12, 31))
    q = int(text[-1])
    start = dt.date(year, 3 * q - 2, 1)
    end = dt.date(year + 1, 1, 1) if q == 4 else dt.date(year, 3 * q + 1, 1)
    return Period(text=text, year=year, quarter=q, start=start, end=end - dt.timedelta(days=1))


class Tally(BaseModel):
    """Scored deadlines due in a span: met on time, met late, past due and not met, not yet due."""

    on_time: int = 0
    late: int = 0
    missed: int = 0
    pending: int = 0

    @property
    def decided(self) -> int:
        return self.on_time + self.late + self.missed

    @property
    def rate(self) -> float | None:
        """On time ÷ deadlines already due (met or not); None when none was due."""
        return self.on_time / self.decided if self.decided else None

    def add(self, outcome: str) -> None:
        if outcome in ("on_time", "late", "missed", "pending"):
            setattr(self, outcome, getattr(self, outcome) + 1)


def _colours() -> dict[str, int]:
    return dict.fromkeys(COLOURS, 0)


class MonthFigures(BaseModel):
    month: str  # "2027-03"
    deadlines: Tally
    escalations: dict[str, int]  # colour -> escalations raised in the month


class GroupFigures(BaseModel):
    group_no: int | None  # None: tasks whose group is not known
    title: str
    assignments: int
    accepted: int
    deadlines: Tally
    escalations: dict[str, int]


class EscalatedUnit(BaseModel):
    unit_id: str
    escalations: dict[str, int]
    tasks: list[int]  # the tasks escalated in the period


class OverdueItem(BaseModel):
    assignment_id: str
    task_no: int
    unit_id: str
    kind: str  # acceptance, annual_plan, quarterly_report
    key: str
    due: dt.date
    days_overdue: int  # calendar days from the due date to the bulletin's moment
    level: OverdueLevel  # the highest escalation raised for it by then


class BulletinFigures(BaseModel):
    programme_id: str
    period: Period
    as_of: dt.datetime
    assignments: int  # live at the moment
    accepted: int
    deadlines: Tally  # due in the period
    escalations: dict[str, int]  # raised in the period
    verifications_passed: int
    verifications_failed: int
    months: list[MonthFigures]
    groups: list[GroupFigures]
    escalated_units: list[EscalatedUnit]  # red or yellow in the period: most red first
    overdue: list[OverdueItem]  # highest level first, then the oldest


def _day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(SHANGHAI).date()


def bulletin_figures(
    programme_id: str,
    period: Period,
    states: Sequence[Recorded],
    as_of: dt.datetime,
    groups: Mapping[int, tuple[int, str]] | None = None,
) -> BulletinFigures:
    """`groups` maps a task to its group's number and title (tasks not in it go under 其他任务)."""
    groups = groups or {}
    today = _day(as_of)
    live_states = [s for s in states if live(s, as_of)]
    total, months = Tally(), {f"{y}-{m:02d}": (Tally(), _colours()) for y, m in period.months()}
    escalations = _colours()
    by_group: dict[int | None, GroupFigures] = {}
    by_unit: dict[str, tuple[dict[str, int], set[int]]] = {}
    overdue: list[OverdueItem] = []
    passed = failed = 0
    for s in live_states:
        r = s.record
        no, title = groups.get(s.task_no, (None, "其他任务"))
        g = by_group.setdefault(no, GroupFigures(group_no=no, title=title, assignments=0, accepted=0,
                                                 deadlines=Tally(), escalations=_colours()))  # fmt: skip
        g.assignments += 1
        g.accepted += r.accepted_at is not None and r.accepted_at <= as_of
        levels: dict[str, OverdueLevel] = {}
        for e in r.escalations:
            if e.at > as_of:
                continue
            if OVERDUE_RANK[e.level] > OVERDUE_RANK[levels.get(e.key, OverdueLevel.NONE)]:
                levels[e.key] = e.level
            when = _day(e.at)
            if period.holds(when) and e.level.value in COLOURS:
                escalations[e.level.value] += 1
                g.escalations[e.level.value] += 1
                months[f"{when.year}-{when.month:02d}"][1][e.level.value] += 1
                colours, tasks = by_unit.setdefault(s.unit_id, (_colours(), set()))
                colours[e.level.value] += 1
                tasks.add(s.task_no)
        for mark, outcome in deadline_outcomes(r.deadlines, as_of).values():
            if period.holds(mark.due):
                total.add(outcome)
                g.deadlines.add(outcome)
                months[f"{mark.due.year}-{mark.due.month:02d}"][0].add(outcome)
            if outcome == "missed":
                overdue.append(OverdueItem(assignment_id=s.assignment_id, task_no=s.task_no, unit_id=s.unit_id,
                                           kind=mark.kind, key=mark.key, due=mark.due,
                                           days_overdue=(today - mark.due).days,
                                           level=levels.get(mark.key, OverdueLevel.NONE)))  # fmt: skip
        for d in r.decisions:
            if d.at <= as_of and period.holds(_day(d.at)):
                passed += d.passed
                failed += not d.passed
    flagged = [
        EscalatedUnit(unit_id=u, escalations=c, tasks=sorted(t))
        for u, (c, t) in by_unit.items()
        if c["red"] or c["yellow"]
    ]
    flagged.sort(key=lambda u: (-u.escalations["red"], -u.escalations["yellow"], u.unit_id))
    overdue.sort(key=lambda i: (-OVERDUE_RANK[i.level], i.due, i.assignment_id))
    return BulletinFigures(
        programme_id=programme_id,
        period=period,
        as_of=as_of,
        assignments=len(live_states),
        accepted=sum(g.accepted for g in by_group.values()),
        deadlines=total,
        escalations=escalations,
        verifications_passed=passed,
        verifications_failed=failed,
        months=[MonthFigures(month=k, deadlines=t, escalations=c) for k, (t, c) in months.items()],
        groups=sorted(by_group.values(), key=lambda g: (g.group_no is None, g.group_no or 0)),
        escalated_units=flagged,
        overdue=overdue,
    )
