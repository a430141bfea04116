"""Realistic event streams for the audit benchmarks: whole assignment lifecycles, interleaved.

Each assignment emits, in its own sequence: created, accepted, then per year a plan
(milestones, indicators), its approval, four quarterly progress reports (narrative,
indicator values, evidence files), a verification request and pass, and the next year's
start. Assignments are interleaved round-robin, as many concurrently running workflows
publish them, so each assignment's per-assignment sequence has no gaps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator

from contracts.base import Actor, Role, UserRole
from contracts.events import (
    AnnualPlanApproved,
    AnnualPlanSubmitted,
    AssignmentAccepted,
    AssignmentCreated,
    Event,
    Evidence,
    Fact,
    IndicatorTarget,
    IndicatorValue,
    Milestone,
    ProgressReported,
    VerificationPassed,
    VerificationRequested,
    YearStarted,
    make_event,
)
from contracts.ids import assignment_id

START_YEAR = 2026
YEAR_STEPS = 9  # plan, approval, four reports, verification request, pass, next year's start
NARRATIVE = (
    "本季度按照年度计划推进绿色建筑和城市更新工作，完成既有建筑节能改造项目三个，"
    "新开工装配式建筑面积约十二万平方米，海绵城市建设累计达标面积持续增加；"
    "同时组织开展城市体检自评估，梳理问题清单并明确整改责任和时限。"
)
SUPERVISOR = Actor(sub="supervisor:bench", role=UserRole.SUPERVISOR)
VERIFIER = Actor(sub="verifier:bench", role=UserRole.VERIFIER)
SYSTEM = Actor(sub="policyflow", role=UserRole.SYSTEM)


def _evidence(name: str) -> Evidence:
    return Evidence(name=name, sha256=hashlib.sha256(name.encode()).hexdigest(), size=len(name) * 4096)


def _fact(step: int, year: int) -> tuple[Fact, str]:
    """The fact at a step of an assignment's life, and who causes it ('unit', 'supervisor', ...)."""
    if step == 0:
        return AssignmentCreated(
            task_title="大力推动绿色建筑高质量发展", role=Role.RESPONSIBLE, start_year=START_YEAR,
            horizon_year=2035, evaluation_years=[2030, 2035],
        ), "system"  # fmt: skip
    if step == 1:
        return AssignmentAccepted(year=START_YEAR), "unit"
    k = (step - 2) % YEAR_STEPS
    if k == 0:
        return AnnualPlanSubmitted(
            year=year,
            revision=1,
            milestones=[Milestone(title=f"第{q}季度完成阶段目标", due=dt.date(year, 3 * q, 28)) for q in (1, 2, 3, 4)],
            indicators=[
                IndicatorTarget(name="新建绿色建筑占比", unit="%", target=100.0),
                IndicatorTarget(name="既有建筑节能改造面积", unit="万平方米", target=50.0),
                IndicatorTarget(name="装配式建筑占新建建筑比例", unit="%", target=30.0),
            ],
        ), "unit"
    if k == 1:
        return AnnualPlanApproved(year=year, revision=1, comment="同意"), "supervisor"
    if 2 <= k <= 5:
        q = k - 1
        return ProgressReported(
            year=year,
            period=f"{year}-Q{q}",
            percent=25.0 * q,
            narrative=NARRATIVE,
            indicator_values=[
                IndicatorValue(name="新建绿色建筑占比", value=90.0 + q),
                IndicatorValue(name="既有建筑节能改造面积", value=12.5 * q),
            ],
            evidence=[_evidence(f"{year}-Q{q}-进展报告.pdf"), _evidence(f"{year}-Q{q}-现场照片.zip")],
        ), "unit"
    if k == 6:
        return VerificationRequested(year=year, reason="declared_done", note="年度任务已完成，申请核验"), "unit"
    if k == 7:
        return VerificationPassed(year=year, findings="经城市体检核验，年度目标完成"), "verifier"
    return YearStarted(year=year + 1), "system"


def year_of(step: int) -> int:
    return START_YEAR + max(0, step - 2) // YEAR_STEPS


def lifecycle_events(
    programme_id: str, assignments: int, per_assignment: int, units: int = 500, tasks: int = 30
) -> Iterator[Event]:
    """`assignments * per_assignment` events, round-robin over assignments, in occurred_at order."""
    base = dt.datetime(START_YEAR, 1, 5, 8, 0, tzinfo=dt.UTC)
    facts: dict[int, tuple[Fact, str]] = {}
    for step in range(per_assignment):
        if step not in facts:
            facts[step] = _fact(step, year_of(step))
        fact, who = facts[step]
        for a in range(assignments):
            task_no, unit = a % tasks + 1, f"unit-{a // tasks % units:04d}-{a // (tasks * units)}"
            actor = {"unit": Actor(sub=f"department:{unit}", role=UserRole.DEPARTMENT, unit_id=unit),
                     "supervisor": SUPERVISOR, "verifier": VERIFIER}.get(who, SYSTEM)  # fmt: skip
            yield make_event(
                fact,
                seq=step,
                occurred_at=base + dt.timedelta(days=step * 10, seconds=a),
                programme_id=programme_id,
                actor=actor,
                assignment_id=assignment_id(programme_id, task_no, unit),
                task_no=task_no,
                unit_id=unit,
            )


def events(programme_id: str, count: int, per_assignment: int = 20) -> Iterator[Event]:
    """About `count` events (a whole number of rounds), `per_assignment` per assignment."""
    assignments = max(1, -(-count // per_assignment))
    yield from lifecycle_events(programme_id, assignments, per_assignment)
