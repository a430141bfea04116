"""Indicator figures as of a date: a pure function of the programme's declared indicators and its
assignments' folded states (their dated records).

The progress service feeds it the read model's states, the auditors' replay the ledger's states
as of the same date; as only records dated on or before `as_of` are read, both give the same numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from contracts.indicators import AGGREGATION_WORDS, IndicatorSpec, ProgrammeOutcomes
from contracts.records import Recorded

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # the calendar's zone (workflows/calendar.py)


class UnitFigure(BaseModel):
    unit_id: str
    value: float | None = None
    period: str | None = None  # the report the value came from
    reported_at: dt.datetime | None = None
    target: float | None = None  # the unit's own target in its plan for the year (本区县工作目标)
    met: bool | None = None


class YearFigure(BaseModel):
    year: int
    value: float | None  # city-wide, by the indicator's aggregation
    target: float | None  # the programme's city-wide target for the year
    met: bool | None
    progress: float | None  # the value as a percentage of the goal
    units_reporting: int
    units_total: int
    units: list[UnitFigure]


class IndicatorFigures(BaseModel):
    id: str
    name: str
    measure: str
    aggregation: str
    aggregation_words: str
    threshold: float | None
    tasks: list[int]
    goal_year: int
    goal: float
    years: list[YearFigure]


class IndicatorsAnswer(BaseModel):
    programme_id: str
    as_of: dt.datetime
    example: bool
    note: str
    indicators: list[IndicatorFigures]


def as_of_moment(text: str) -> dt.datetime:
    """`2027-03-31` (the end of that day in Shanghai) or an ISO 8601 time (without a zone: UTC);
    ValueError for anything else."""
    text = text.strip()
    if len(text) == 10:
        return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(23, 59, 59, 999999), tzinfo=SHANGHAI)
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


AS_OF_WORDS = "日期应写作 2027-03-31 或 2027-03-31T12:00:00+08:00 (a date or an ISO 8601 time)"


def resolved(as_of: dt.datetime | None, states: Sequence[Recorded]) -> dt.datetime:
    """`as_of`, or now: the clock's time, or the latest record's when that is later (a test's
    time-skipped workflows), so that nothing recorded is left out of "now"."""
    if as_of is not None:
        return as_of
    now = dt.datetime.now(dt.UTC)
    latest = max((t for s in states if (t := s.record.latest()) is not None), default=now)
    return max(now, latest)


def live(state: Recorded, as_of: dt.datetime) -> bool:
    """The assignment existed at `as_of` and had not been cancelled by then."""
    r = state.record
    created = r.created_at is None or r.created_at <= as_of
    return created and (r.cancelled_at is None or r.cancelled_at > as_of)


def meets(value: float | None, target: float | None, higher_is_better: bool = True) -> bool | None:
    if value is None or target is None:
        return None
    return value >= target if higher_is_better else value <= target


def progress_toward(value: float | None, goal: float, higher_is_better: bool) -> float | None:
    if value is None:
        return None
    if higher_is_better:
        return None if goal == 0 else round(100 * value / goal, 2)
    return None if value == 0 else round(100 * goal / value, 2)


def _unit_figure(
    spec: IndicatorSpec, unit_id: str, states: Sequence[Recorded], year: int, as_of: dt.datetime
) -> UnitFigure:
    fig = UnitFigure(unit_id=unit_id)
    target_at: dt.datetime | None = None
    for s in states:
        for v in s.record.values:
            newer = fig.reported_at is None or v.at >= fig.reported_at
            if v.year == year and v.at <= as_of and spec.id in v.values and newer:
                fig.value, fig.period, fig.reported_at = v.values[spec.id], v.period, v.at
        for t in s.record.targets:
            newer = target_at is None or t.at >= target_at
            if t.year == year and t.at <= as_of and spec.id in t.targets and newer:
                fig.target, target_at = t.targets[spec.id], t.at
    fig.met = meets(fig.value, fig.target, spec.higher_is_better)
    return fig


def city_value(spec: IndicatorSpec, units: Sequence[UnitFigure]) -> float | None:
    reported = [u for u in units if u.value is not None]
    if not reported:
        return None
    values = [u.value for u in reported if u.value is not None]
    match spec.aggregation:
        case "sum":
            return round(sum(values), 6)
        case "mean":
            return round(sum(values) / len(values), 6)
        case "share_at_or_above":
            assert spec.threshold is not None
            at_or_above = sum(1 for v in values if v >= spec.threshold)
            return round(100 * at_or_above / len(units), 4)
        case _:  # latest
            latest = max(reported, key=lambda u: (u.reported_at or dt.datetime.min.replace(tzinfo=dt.UTC), u.unit_id))
            return latest.value


def indicator_figures(
    spec: IndicatorSpec, states: Iterable[Recorded], as_of: dt.datetime, unit_id: str | None = None
) -> IndicatorFigures:
    """One indicator's figures per year; `unit_id` (a department's scope) limits the units listed,
    not the city-wide value."""
    tasks, roles = set(spec.tasks), set(spec.roles)
    by_unit: dict[str, list[Recorded]] = {}
    for s in states:
        if s.task_no in tasks and (not roles or s.role in roles) and live(s, as_of):
            by_unit.setdefault(s.unit_id, []).append(s)
    years = set(spec.targets)
    for group in by_unit.values():
        for s in group:
            years |= {v.year for v in s.record.values if v.at <= as_of and spec.id in v.values}
            years |= {t.year for t in s.record.targets if t.at <= as_of and spec.id in t.targets}
    out = []
    for year in sorted(years):
        units = [_unit_figure(spec, u, by_unit[u], year, as_of) for u in sorted(by_unit)]
        value, target = city_value(spec, units), spec.targets.get(year)
        out.append(
            YearFigure(
                year=year,
                value=value,
                target=target,
                met=meets(value, target, spec.higher_is_better),
                progress=progress_toward(value, spec.goal, spec.higher_is_better),
                units_reporting=sum(1 for u in units if u.value is not None),
                units_total=len(units),
                units=[u for u in units if unit_id is None or u.unit_id == unit_id],
            )
        )
    return IndicatorFigures(
        id=spec.id,
        name=spec.name,
        measure=spec.measure,
        aggregation=spec.aggregation,
        aggregation_words=AGGREGATION_WORDS[spec.aggregation],
        threshold=spec.threshold,
        tasks=spec.tasks,
        goal_year=spec.goal_year,
        goal=spec.goal,
        years=out,
    )


def indicators_answer(
    programme_id: str,
    outcomes: ProgrammeOutcomes,
    states: Sequence[Recorded],
    as_of: dt.datetime,
    unit_id: str | None = None,
    indicator_id: str | None = None,
) -> IndicatorsAnswer:
    specs = [s for s in outcomes.indicators if indicator_id is None or s.id == indicator_id]
    return IndicatorsAnswer(
        programme_id=programme_id,
        as_of=as_of,
        example=outcomes.example,
        note=outcomes.note,
        indicators=[indicator_figures(spec, states, as_of, unit_id) for spec in specs],
    )
