"""考核 scores per unit and year as of a date: a pure function of the programme's scoring rule
(contracts.indicators.ScoringRule) and its assignments' dated records, like contracts.figures.

Each component is shown with what it counted, so a unit can see why it scored what it did.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from contracts.figures import SHANGHAI, live
from contracts.indicators import IndicatorSpec, ScoringRule
from contracts.records import DeadlineMark, Recorded

COMPONENT_LABELS: dict[str, str] = {
    "acceptance": "按期签收",
    "plans": "年度计划按期报送",
    "reports": "季度进展按期报送",
    "verification": "核验通过",
    "escalations": "督办扣分",
    "indicators": "指标目标完成",
}
DEADLINE_KINDS = {"acceptance": "acceptance", "plans": "annual_plan", "reports": "quarterly_report"}


class Component(BaseModel):
    key: str
    label: str
    weight: float
    fraction: float  # 0..1
    points: float
    counted: int  # the items the fraction is over (0: nothing in it this year)
    detail: str  # in words: what was counted


class UnitScore(BaseModel):
    unit_id: str
    rank: int
    total: float
    started: bool  # accepted at least one assignment by `as_of`
    assignments: int
    components: list[Component]


class ScoresAnswer(BaseModel):
    programme_id: str
    year: int
    as_of: dt.datetime
    rule: ScoringRule
    max_total: float
    units: list[UnitScore]


@dataclass
class Tally:
    on_time: int = 0
    late: int = 0
    missed: int = 0

    @property
    def counted(self) -> int:
        return self.on_time + self.late + self.missed


def deadline_outcomes(marks: Sequence[DeadlineMark], as_of: dt.datetime) -> dict[str, tuple[DeadlineMark, str]]:
    """Each scored deadline as of `as_of`: its first mark (the original due date) and
    on_time / late / missed / pending / dropped. A plan returned and resubmitted keeps its first due;
    an approved extension moves it."""
    first: dict[str, DeadlineMark] = {}
    met: dict[str, dt.datetime | None] = {}
    dropped: set[str] = set()
    for m in marks:
        if m.at > as_of:
            continue
        if m.mark == "opened":  # a returned plan reopens its deadline: the first due stands
            first.setdefault(m.key, m)
            met[m.key] = None
        elif m.mark == "extended":  # an approved extension: the new due is the one in force
            first[m.key] = m
        elif m.mark == "met":
            met[m.key] = m.at
        else:
            dropped.add(m.key)
    today = as_of.astimezone(SHANGHAI).date()
    out = {}
    for key, m in first.items():
        when = met.get(key)
        if key in dropped and when is None:
            out[key] = (m, "dropped")
        elif when is not None:
            out[key] = (m, "on_time" if when.astimezone(SHANGHAI).date() <= m.due else "late")
        else:
            out[key] = (m, "missed" if today > m.due else "pending")
    return out


def _deadlines(states: Sequence[Recorded], kind: str, year: int, as_of: dt.datetime) -> Tally:
    t = Tally()
    for s in states:
        for m, outcome in deadline_outcomes(s.record.deadlines, as_of).values():
            if m.kind != kind or m.year != year:
                continue
            if outcome == "on_time":
                t.on_time += 1
            elif outcome == "late":
                t.late += 1
            elif outcome == "missed":
                t.missed += 1
    return t


def _component(key: str, weight: float, fraction: float | None, counted: int, detail: str, started: bool) -> Component:
    if fraction is None:  # nothing in it this year, or the unit has not started
        fraction = 1.0 if started else 0.0
        detail = (detail if counted else "本年无应办事项") + ("" if started else "；尚未签收任何任务，不得分")
    return Component(
        key=key,
        label=COMPONENT_LABELS[key],
        weight=weight,
        fraction=round(fraction, 4),
        points=round(weight * fraction, 2),
        counted=counted,
        detail=detail,
    )


def unit_components(
    rule: ScoringRule,
    specs: dict[str, IndicatorSpec],
    states: Sequence[Recorded],
    year: int,
    as_of: dt.datetime,
) -> tuple[bool, list[Component]]:
    w = rule.weights
    started = any(s.record.accepted_at is not None and s.record.accepted_at <= as_of for s in states)
    out = []
    for key in ("acceptance", "plans", "reports"):
        t = _deadlines(states, DEADLINE_KINDS[key], year, as_of)
        frac = None if t.counted == 0 else (t.on_time + rule.late_credit * t.late) / t.counted
        words = f"按期 {t.on_time}，逾期办理 {t.late}，未办 {t.missed}"
        out.append(_component(key, getattr(w, key), frac, t.counted, words, started))
    decisions = [d for s in states for d in s.record.decisions if d.year == year and d.at <= as_of]
    passed = sum(1 for d in decisions if d.passed)
    frac = None if not decisions else passed / len(decisions)
    words = f"通过 {passed}，未通过 {len(decisions) - passed}"
    out.append(_component("verification", w.verification, frac, len(decisions), words, started))
    escalations = [e for s in states for e in s.record.escalations if e.year == year and e.at <= as_of]
    penalty = sum(getattr(rule.penalties, e.level.value, 0.0) for e in escalations)
    by_colour = {c: sum(1 for e in escalations if e.level.value == c) for c in ("blue", "yellow", "red")}
    words = (
        f"蓝 {by_colour['blue']}，黄 {by_colour['yellow']}，红 {by_colour['red']}（按 {len(states)} 项任务平均扣分）"
    )
    frac = None if not started else max(0.0, 1.0 - penalty / max(1, len(states)))
    out.append(_component("escalations", w.escalations, frac, len(escalations), words, started))
    met = total = 0
    for s in states:
        targets = [t for t in s.record.targets if t.year == year and t.at <= as_of]
        if not targets:
            continue
        values: dict[str, float] = {}
        for v in sorted((v for v in s.record.values if v.year == year and v.at <= as_of), key=lambda v: v.at):
            values.update(v.values)
        for ind, target in targets[-1].targets.items():
            total += 1
            higher = specs[ind].higher_is_better if ind in specs else True
            value = values.get(ind)
            if value is not None and (value >= target if higher else value <= target):
                met += 1
    frac = None if total == 0 else met / total
    out.append(_component("indicators", w.indicators, frac, total, f"达标 {met} / 目标 {total}", started))
    return started, out


def scores_answer(
    programme_id: str,
    rule: ScoringRule,
    specs: Sequence[IndicatorSpec],
    states: Sequence[Recorded],
    year: int,
    as_of: dt.datetime,
    unit_id: str | None = None,
) -> ScoresAnswer:
    """Every unit's score for `year`, ranked (highest first, then by unit id); `unit_id` (a
    department's scope) keeps its row only, with its rank among all units."""
    by_unit: dict[str, list[Recorded]] = {}
    for s in states:
        if live(s, as_of):
            by_unit.setdefault(s.unit_id, []).append(s)
    by_id = {spec.id: spec for spec in specs}
    rows = []
    for unit, group in by_unit.items():
        started, comps = unit_components(rule, by_id, group, year, as_of)
        total = round(sum(c.points for c in comps), 2)
        rows.append(
            UnitScore(unit_id=unit, rank=0, total=total, started=started, assignments=len(group), components=comps)
        )
    rows.sort(key=lambda r: (-r.total, r.unit_id))
    ranked = [r.model_copy(update={"rank": i}) for i, r in enumerate(rows, 1)]
    return ScoresAnswer(
        programme_id=programme_id,
        year=year,
        as_of=as_of,
        rule=rule,
        max_total=rule.weights.total(),
        units=[r for r in ranked if unit_id is None or r.unit_id == unit_id],
    )
