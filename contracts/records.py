"""An assignment's dated record, kept by the fold beside its state, for indicators and scores.

The state says where an assignment is now; the record says what happened when: deadlines opened
and met, plans' indicator targets, reported indicator values, verification decisions,
escalations, self-evaluations and the verifiers' evaluation scores, each with the time of its
event. The figures as of a date read only what is dated on or before it, so the live read
model's record and an as-of replay's give the same numbers.
Only the deadlines that are scored are kept (acceptance, annual plans, quarterly reports).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.base import OverdueLevel, Role
from contracts.division_facts import AssignmentReassigned, AssignmentRemoved
from contracts.events import (
    AnnualPlanSubmitted,
    AssignmentAccepted,
    AssignmentCancelled,
    AssignmentClosed,
    AssignmentCompleted,
    AssignmentCreated,
    Deadline,
    DeadlinesRecomputed,
    EvaluationRecorded,
    ExtensionApproved,
    Fact,
    ProgressReported,
    SelfEvaluationSubmitted,
    SupervisionEscalated,
    VerificationFailed,
    VerificationPassed,
)

SCORED_KINDS = ("acceptance", "annual_plan", "quarterly_report")
KEPT_TEXT = 200  # characters of a self-evaluation the record keeps: enough for an excerpt, not the whole text
LEFT = (AssignmentCancelled, AssignmentReassigned, AssignmentRemoved)  # the unit's assignment ends without completion


class DeadlineMark(BaseModel):
    """A scored deadline opened, moved (`extended`: by an approved extension or a published working
    calendar, the new due being the one in force), met, or dropped (closed by completion, early
    closure or cancellation: neither met nor missed) by the event at `at`."""

    key: str
    kind: str
    year: int
    due: dt.date
    at: dt.datetime
    mark: Literal["opened", "extended", "met", "dropped"] = "opened"


class Dated(BaseModel):
    at: dt.datetime
    year: int


class TargetsSet(Dated):
    targets: dict[str, float]  # indicator id -> target (a plan's declared indicators only)


class ValuesReported(Dated):
    period: str
    values: dict[str, float]  # indicator id -> value


class Decision(Dated):
    passed: bool


class Escalation(Dated):
    key: str
    level: OverdueLevel


class SelfEvaluated(Dated):
    """A unit's self-evaluation (自评) of a five-year evaluation; a later revision replaces it."""

    revision: int
    score: float
    text: str  # its first KEPT_TEXT characters


class Evaluated(Dated):
    """The verifiers' evaluation score (五年评估) recorded with the year's verification."""

    score: float


class OutcomeRecord(BaseModel):
    created_at: dt.datetime | None = None
    accepted_at: dt.datetime | None = None
    cancelled_at: dt.datetime | None = None
    deadlines: list[DeadlineMark] = Field(default_factory=list)
    targets: list[TargetsSet] = Field(default_factory=list)
    values: list[ValuesReported] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    self_evaluations: list[SelfEvaluated] = Field(default_factory=list)
    evaluations: list[Evaluated] = Field(default_factory=list)

    def latest(self) -> dt.datetime | None:
        """The time of the last event recorded here."""
        times = [t for t in (self.created_at, self.accepted_at, self.cancelled_at) if t is not None]
        dated: tuple[list[Any], ...] = (self.deadlines, self.targets, self.values, self.decisions, self.escalations,
                                        self.self_evaluations, self.evaluations)  # fmt: skip
        for items in dated:
            times += [item.at for item in items]
        return max(times, default=None)


def note(record: OutcomeRecord, fact: Fact, at: dt.datetime, open_now: dict[str, Deadline]) -> None:
    """Add what `fact` (of an event at `at`) means for the record; `open_now` are the deadlines
    open before it, which its `closes` names."""
    ending = isinstance(fact, (AssignmentCompleted, AssignmentClosed, *LEFT))
    how: Literal["met", "dropped"] = "dropped" if ending else "met"
    moved = isinstance(fact, ExtensionApproved | DeadlinesRecomputed)  # the due in force moves
    opened: Literal["opened", "extended"] = "extended" if moved else "opened"
    for key in fact.closes:
        d = open_now.get(key)
        if d is not None and d.kind in SCORED_KINDS:
            record.deadlines.append(DeadlineMark(key=key, kind=d.kind, year=d.year, due=d.due, at=at, mark=how))
    for d in fact.opens:
        if d.kind in SCORED_KINDS:
            record.deadlines.append(DeadlineMark(key=d.key, kind=d.kind, year=d.year, due=d.due, at=at, mark=opened))
    match fact:
        case AssignmentCreated():
            record.created_at = at
            carried = fact.handover
            if carried is not None and (carried.accepted or carried.plan is not None):  # 转办: starts where it stood
                record.accepted_at = at
            if carried is not None and carried.plan is not None:
                targets = {i["id"]: i["target"] for i in carried.plan.get("indicators", []) if i.get("id")}
                record.targets.append(TargetsSet(at=at, year=int(carried.plan.get("year", 0)), targets=targets))
        case AssignmentAccepted():
            record.accepted_at = at
        case AssignmentCancelled() | AssignmentReassigned() | AssignmentRemoved():
            record.cancelled_at = at  # no longer the unit's: left out of figures and scores from then on
        case AnnualPlanSubmitted():
            targets = {i.id: i.target for i in fact.indicators if i.id is not None}
            record.targets.append(TargetsSet(at=at, year=fact.year, targets=targets))
        case ProgressReported():
            values = {v.id: v.value for v in fact.indicator_values if v.id is not None}
            if values:
                record.values.append(ValuesReported(at=at, year=fact.year, period=fact.period, values=values))
        case VerificationPassed():
            record.decisions.append(Decision(at=at, year=fact.year, passed=True))
        case VerificationFailed():
            record.decisions.append(Decision(at=at, year=fact.year, passed=False))
        case SupervisionEscalated():
            d = fact.deadline
            record.escalations.append(Escalation(at=at, year=d.year, key=d.key, level=fact.level))
        case SelfEvaluationSubmitted():
            kept = fact.text[:KEPT_TEXT]
            record.self_evaluations.append(
                SelfEvaluated(at=at, year=fact.year, revision=fact.revision, score=fact.score, text=kept)
            )
        case EvaluationRecorded():
            record.evaluations.append(Evaluated(at=at, year=fact.year, score=fact.score))
        case _:
            pass


class Recorded(BaseModel):
    """What figures and scores read of an assignment's folded state (extra fields ignored): the
    read model's state JSON parsed this far only costs a fraction of the whole AssignmentState."""

    assignment_id: str
    task_no: int
    unit_id: str
    role: Role = Role.RESPONSIBLE
    record: OutcomeRecord = Field(default_factory=OutcomeRecord)
