"""Facts (one class per fact, past tense) and the envelope every event travels in.

An event id is deterministic: the assignment id and its per-assignment sequence, so a
publish retried by Temporal carries the same `Nats-Msg-Id` and JetStream keeps one copy.
Facts may open and close deadlines; the fold in `contracts.fold` applies that generically.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from contracts.base import Actor, Frozen, OverdueLevel, Role
from contracts.calendar_facts import CALENDAR_FACTS
from contracts.division_facts import DIVISION_FACTS, Handover
from contracts.fact_base import Deadline as Deadline
from contracts.fact_base import DeadlineKind as DeadlineKind
from contracts.fact_base import Fact as Fact
from contracts.ids import SHA256_PATTERN
from contracts.indicators import INDICATOR_ID_PATTERN, ProgrammeOutcomes


class Milestone(Frozen):
    title: str = Field(min_length=1, max_length=500)
    due: dt.date


class IndicatorTarget(Frozen):
    """A plan's target; `id` names a declared indicator of the programme (None: a free-text one)."""

    id: str | None = Field(default=None, pattern=INDICATOR_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(default="", max_length=50)
    target: float


class IndicatorValue(Frozen):
    id: str | None = Field(default=None, pattern=INDICATOR_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    value: float


class Evidence(Frozen):
    name: str = Field(min_length=1, max_length=300)
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0, le=10 * 1024**3)


class ProgrammeImported(Fact):
    TYPE = "ProgrammeImported"
    document_no: str
    title: str
    task_count: int
    responsibility_count: int
    content_sha256: str
    outcomes: ProgrammeOutcomes | None = None  # indicators.yaml: indicators and scoring rule


class AssignmentCreated(Fact):
    TYPE = "AssignmentCreated"
    task_title: str
    role: Role
    start_year: int
    horizon_year: int
    lead_assignment_id: str | None = None
    evaluation_years: list[int] = []
    handover: Handover | None = None  # a reassignment (转办): the assignment this one continues
    revision: int | None = None  # added by this revision of the programme's division


class AssignmentAccepted(Fact):
    TYPE = "AssignmentAccepted"
    year: int


class AnnualPlanSubmitted(Fact):
    TYPE = "AnnualPlanSubmitted"
    year: int
    revision: int
    milestones: list[Milestone]
    indicators: list[IndicatorTarget]


class AnnualPlanApproved(Fact):
    TYPE = "AnnualPlanApproved"
    year: int
    revision: int
    comment: str = ""


class AnnualPlanReturned(Fact):
    TYPE = "AnnualPlanReturned"
    year: int
    revision: int
    reasons: str


class ProgressReported(Fact):
    TYPE = "ProgressReported"
    year: int
    period: str
    percent: float
    narrative: str
    indicator_values: list[IndicatorValue] = []
    evidence: list[Evidence] = []


class CooperatingReportReceived(Fact):
    """A cooperating unit's report, copied to the lead's assignment so the lead can consolidate."""

    TYPE = "CooperatingReportReceived"
    from_assignment_id: str
    from_unit_id: str
    year: int
    period: str
    percent: float
    narrative: str


class ReminderIssued(Fact):
    TYPE = "ReminderIssued"
    deadline: Deadline


class SupervisionEscalated(Fact):
    TYPE = "SupervisionEscalated"
    deadline: Deadline
    level: OverdueLevel
    working_days_overdue: int


class EscalationCleared(Fact):
    """The deadline that caused an escalation was met late; the level drops accordingly."""

    TYPE = "EscalationCleared"
    deadline_key: str


class VerificationRequested(Fact):
    TYPE = "VerificationRequested"
    year: int
    reason: Literal["declared_done", "year_end"]
    note: str = ""


class VerificationPassed(Fact):
    TYPE = "VerificationPassed"
    year: int
    findings: str = ""


class VerificationFailed(Fact):
    TYPE = "VerificationFailed"
    year: int
    findings: str
    rework_due: dt.date


class EvaluationRecorded(Fact):
    """The five-year evaluation (五年一评估) that accompanies verification in an evaluation year."""

    TYPE = "EvaluationRecorded"
    year: int
    score: float
    findings: str = ""


class SelfEvaluationSubmitted(Fact):
    """The unit's self-evaluation (自评) for a five-year evaluation; `revision` > 1 replaces the one before."""

    TYPE = "SelfEvaluationSubmitted"
    year: int
    revision: int
    score: float
    text: str


class YearStarted(Fact):
    TYPE = "YearStarted"
    year: int


class AssignmentCompleted(Fact):
    TYPE = "AssignmentCompleted"
    year: int


class AssignmentCancelled(Fact):
    TYPE = "AssignmentCancelled"
    reason: str


class TaskSummarySubmitted(Fact):
    """The lead unit's consolidated annual summary (汇总) of its task, from the cooperating units' reports."""

    TYPE = "TaskSummarySubmitted"
    year: int
    revision: int
    text: str


# ---- changes during the year (issue 21): extensions, manual reminders, early closure -------------


class ExtensionRequested(Fact):
    """A unit asked to move one of its open deadlines (延期申请); `n` numbers the assignment's requests."""

    TYPE = "ExtensionRequested"
    n: int
    deadline_key: str
    due: dt.date  # the date in force when the request was made
    new_due: dt.date
    reason: str


class ExtensionApproved(Fact):
    """A supervisor moved the deadline: `opens` carries it at `new_due` (its reminders start over)."""

    TYPE = "ExtensionApproved"
    n: int
    deadline_key: str
    old_due: dt.date
    new_due: dt.date
    reason: str = ""


class ExtensionRefused(Fact):
    TYPE = "ExtensionRefused"
    n: int
    deadline_key: str
    reason: str


class ManualReminderIssued(Fact):
    """A supervisor chased the unit by hand (催办), with a message; `deadline` is the nearest open one."""

    TYPE = "ManualReminderIssued"
    message: str
    deadline: Deadline | None = None


class AssignmentClosed(Fact):
    """A supervisor closed the task for this unit before its horizon (办结销号), with the reason."""

    TYPE = "AssignmentClosed"
    year: int
    reason: str


class MovedDeadline(Frozen):
    key: str
    old_due: dt.date
    new_due: dt.date


class DeadlinesRecomputed(Fact):
    """A working calendar published for `year` moved these open deadlines (`opens` has them at their new dates)."""

    TYPE = "DeadlinesRecomputed"
    year: int
    source: str  # the notice the calendar comes from, which says why the dates moved
    moved: list[MovedDeadline]


class WorkingCalendarPublished(Fact):
    """A year's official working calendar, published by an operator; `revision` > 1 replaces the one before."""

    TYPE = "WorkingCalendarPublished"
    year: int
    revision: int
    holidays: list[dt.date]
    workdays: list[dt.date]
    source: str
    replaces: str | None = None  # the source of the publication it replaces


CHANGE_FACTS: tuple[type[Fact], ...] = (
    ExtensionRequested,
    ExtensionApproved,
    ExtensionRefused,
    ManualReminderIssued,
    AssignmentClosed,
    DeadlinesRecomputed,
    WorkingCalendarPublished,
)


_BASE_FACTS: tuple[type[Fact], ...] = (
    ProgrammeImported,
    AssignmentCreated,
    AssignmentAccepted,
    AnnualPlanSubmitted,
    AnnualPlanApproved,
    AnnualPlanReturned,
    ProgressReported,
    CooperatingReportReceived,
    ReminderIssued,
    SupervisionEscalated,
    EscalationCleared,
    VerificationRequested,
    VerificationPassed,
    VerificationFailed,
    EvaluationRecorded,
    SelfEvaluationSubmitted,
    YearStarted,
    AssignmentCompleted,
    AssignmentCancelled,
    TaskSummarySubmitted,
)
FACT_TYPES: dict[str, type[Fact]] = {
    cls.TYPE: cls for cls in (*_BASE_FACTS, *CHANGE_FACTS, *DIVISION_FACTS, *CALENDAR_FACTS)
}

# (type, from_version) -> pure function payload -> payload of from_version + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcast(type_: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Bring an old payload up to the current schema version of its fact."""
    current = FACT_TYPES[type_].SCHEMA_VERSION
    while version < current:
        payload = UPCASTERS[(type_, version)](payload)
        version += 1
    return payload


class Event(Frozen):
    """The envelope: what goes on the wire and into the ledger."""

    event_id: str
    type: str
    schema_version: int
    occurred_at: dt.datetime
    programme_id: str
    assignment_id: str | None = None
    task_no: int | None = None
    unit_id: str | None = None
    actor: Actor
    seq: int = Field(ge=0)
    payload: dict[str, Any]

    def fact(self) -> Fact:
        """The typed fact, upcast to its current schema."""
        cls = FACT_TYPES[self.type]
        return cls.model_validate(upcast(self.type, self.schema_version, dict(self.payload)))


def event_id(stream_key: str, seq: int) -> str:
    """Deterministic id: the assignment (or programme) key and the sequence within it."""
    return f"{stream_key}#{seq:06d}"


def make_event(
    fact: Fact,
    *,
    seq: int,
    occurred_at: dt.datetime,
    programme_id: str,
    actor: Actor,
    assignment_id: str | None = None,
    task_no: int | None = None,
    unit_id: str | None = None,
) -> Event:
    key = assignment_id or f"programme:{programme_id}"
    return Event(
        event_id=event_id(key, seq),
        type=fact.TYPE,
        schema_version=fact.SCHEMA_VERSION,
        occurred_at=occurred_at,
        programme_id=programme_id,
        assignment_id=assignment_id,
        task_no=task_no,
        unit_id=unit_id,
        actor=actor,
        seq=seq,
        payload=fact.model_dump(mode="json"),
    )
