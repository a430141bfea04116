"""The one fold from events to an assignment's state.

The workflow applies it to its own facts, the read models and the audit replay apply it to
the stream or the ledger, so all three agree by construction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, create_model

from contracts.base import OVERDUE_RANK, OverdueLevel, Role, Stage
from contracts.division_facts import AssignmentReassigned, AssignmentRemoved, AssignmentRevised, Handover
from contracts.events import (
    FACT_TYPES,
    AnnualPlanApproved,
    AnnualPlanReturned,
    AnnualPlanSubmitted,
    AssignmentAccepted,
    AssignmentCancelled,
    AssignmentClosed,
    AssignmentCompleted,
    AssignmentCreated,
    CooperatingReportReceived,
    Deadline,
    EscalationCleared,
    EvaluationRecorded,
    Event,
    ExtensionApproved,
    ExtensionRefused,
    ExtensionRequested,
    Fact,
    ManualReminderIssued,
    ProgressReported,
    ReminderIssued,
    SelfEvaluationSubmitted,
    SupervisionEscalated,
    TaskSummarySubmitted,
    VerificationFailed,
    VerificationPassed,
    VerificationRequested,
    YearStarted,
)
from contracts.records import OutcomeRecord, note


class LastReport(BaseModel):
    year: int
    period: str
    percent: float
    narrative: str
    reported_at: dt.datetime
    indicator_values: list[dict[str, Any]] = Field(default_factory=list)
    evidence: list[dict[str, Any]] = Field(default_factory=list)


ExtensionStatus = Literal["open", "approved", "refused", "lapsed"]


class ExtensionRecord(BaseModel):
    """One extension request (延期申请) and what became of it; `lapsed`: its deadline was met or closed first."""

    n: int
    deadline_key: str
    due: dt.date
    new_due: dt.date
    reason: str
    requested_at: dt.datetime
    status: ExtensionStatus = "open"
    approved_due: dt.date | None = None
    decision_reason: str = ""
    decided_at: dt.datetime | None = None


class AssignmentState(BaseModel):
    """State of one assignment as folded from its events (also the workflow's status).

    Mutable defaults are factories: a default value is deep-copied for every new state, which
    made a new state cost as much as folding six events into it (a replay starts thousands)."""

    assignment_id: str
    programme_id: str
    task_no: int
    unit_id: str
    role: Role = Role.RESPONSIBLE
    task_title: str = ""
    stage: Stage = Stage.ASSIGNED
    year: int = 0
    horizon_year: int = 0
    lead_assignment_id: str | None = None
    deadlines: dict[str, Deadline] = Field(default_factory=dict)
    escalations: dict[str, OverdueLevel] = Field(default_factory=dict)
    overdue_level: OverdueLevel = OverdueLevel.NONE
    plan_revision: int = 0
    plan: dict[str, Any] | None = None
    last_report: LastReport | None = None
    last_verification: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    self_evaluation: dict[str, Any] | None = None  # the latest 自评 (year, revision, score, text, at)
    percent: float = 0.0
    reports: int = 0
    cooperating_reports: int = 0
    plans_returned: int = 0
    verifications_failed: int = 0
    reminders: int = 0
    escalations_total: int = 0
    years_verified: list[int] = Field(default_factory=list)
    evaluations: dict[int, float] = Field(default_factory=dict)
    cancel_reason: str | None = None
    record: OutcomeRecord = Field(default_factory=OutcomeRecord)  # dated, for indicators and scores as of any date
    extensions: list[ExtensionRecord] = Field(default_factory=list)
    manual_reminders: int = 0
    closure: dict[str, Any] | None = None  # an early closure (销号): year, reason, at
    reassigned_from: Handover | None = None  # 转办: the assignment this one continues
    reassigned_to: Handover | None = None  # 转办: the assignment that continues this one
    revision: int | None = None  # the division revision that last added or changed it
    last_seq: int = -1
    updated_at: dt.datetime | None = None

    def next_deadline(self) -> Deadline | None:
        return min(self.deadlines.values(), key=lambda d: (d.due, d.key), default=None)

    def open_extension(self, deadline_key: str) -> ExtensionRecord | None:
        return next((x for x in self.extensions if x.deadline_key == deadline_key and x.status == "open"), None)


def initial_state(event: Event) -> AssignmentState:
    assert event.assignment_id is not None and event.task_no is not None and event.unit_id is not None
    return AssignmentState(
        assignment_id=event.assignment_id,
        programme_id=event.programme_id,
        task_no=event.task_no,
        unit_id=event.unit_id,
    )


def _level(escalations: dict[str, OverdueLevel]) -> OverdueLevel:
    if not escalations:  # the usual case; max() with a key and a default costs 0.6 µs
        return OverdueLevel.NONE
    return max(escalations.values(), key=lambda lv: OVERDUE_RANK[lv], default=OverdueLevel.NONE)


def apply(state: AssignmentState | None, event: Event) -> AssignmentState:
    """Return the state after `event`, leaving `state` as it was. Events at or below `last_seq` change nothing."""
    if state is not None and event.seq <= state.last_seq:
        return state
    return advance(None if state is None else state.model_copy(deep=True), event)


def advance(state: AssignmentState | None, event: Event, fact: Fact | None = None) -> AssignmentState:
    """`apply` in place, for callers that own the state (a replay, a batch of a projection).

    Copying the state for every event costs ten times the fold itself, so folds over many
    events advance one state instead. `fact`, when the caller has it already, is
    `event.fact()` (see `event_and_fact`); it is used only where `event.fact()` would be.
    """
    if state is None:
        state = initial_state(event)
    if event.seq <= state.last_seq:
        return state
    if fact is None:
        fact = event.fact()
    note(state.record, fact, event.occurred_at, state.deadlines)
    _apply_fact(state, fact, event.occurred_at)
    for key in fact.closes:
        state.deadlines.pop(key, None)
        _lapse_extension(state, key)
    for d in fact.opens:
        state.deadlines[d.key] = d
    state.overdue_level = _level(state.escalations)
    state.last_seq = event.seq
    state.updated_at = event.occurred_at
    return state


def _apply_fact(s: AssignmentState, f: Fact, at: dt.datetime) -> None:
    match f:
        case AssignmentCreated():
            s.role, s.task_title, s.year, s.horizon_year = f.role, f.task_title, f.start_year, f.horizon_year
            s.lead_assignment_id, s.stage = f.lead_assignment_id, Stage.ASSIGNED
            if f.handover is not None or f.revision is not None:
                _created_by_change(s, f)
        case AssignmentAccepted():
            s.stage, s.year = Stage.PLANNING, f.year
        case YearStarted():
            s.stage, s.year, s.plan, s.plan_revision, s.percent = Stage.PLANNING, f.year, None, 0, 0.0
        case AnnualPlanSubmitted():
            s.stage, s.plan_revision = Stage.PLAN_SUBMITTED, f.revision
            s.plan = {
                "year": f.year,
                "revision": f.revision,
                "status": "submitted",
                "milestones": [m.model_dump(mode="json") for m in f.milestones],
                "indicators": [i.model_dump(mode="json", exclude_none=True) for i in f.indicators],
            }
        case AnnualPlanApproved():
            s.stage = Stage.IMPLEMENTING
            if s.plan is not None:
                s.plan = {**s.plan, "status": "approved"}
        case AnnualPlanReturned():
            s.stage, s.plans_returned = Stage.PLANNING, s.plans_returned + 1
            if s.plan is not None:
                s.plan = {**s.plan, "status": "returned", "reasons": f.reasons}
        case ProgressReported():
            s.reports, s.percent = s.reports + 1, f.percent
            s.last_report = LastReport(
                year=f.year, period=f.period, percent=f.percent, narrative=f.narrative, reported_at=at,
                indicator_values=[v.model_dump(mode="json", exclude_none=True) for v in f.indicator_values],
                evidence=[e.model_dump(mode="json") for e in f.evidence],
            )  # fmt: skip
        case CooperatingReportReceived():
            s.cooperating_reports += 1
        case ReminderIssued():
            s.reminders += 1
        case SupervisionEscalated():
            s.escalations_total += 1
            s.escalations[f.deadline.key] = f.level
        case EscalationCleared():
            s.escalations.pop(f.deadline_key, None)
        case VerificationRequested():
            s.stage = Stage.VERIFYING
        case VerificationFailed():
            s.stage, s.verifications_failed = Stage.IMPLEMENTING, s.verifications_failed + 1
            s.last_verification = {"year": f.year, "decision": "fail", "findings": f.findings,
                                   "rework_due": f.rework_due.isoformat(), "at": at.isoformat()}  # fmt: skip
        case VerificationPassed():
            s.years_verified = [*s.years_verified, f.year]
            s.last_verification = {"year": f.year, "decision": "pass", "findings": f.findings, "at": at.isoformat()}
        case TaskSummarySubmitted():
            s.summary = {"year": f.year, "revision": f.revision, "text": f.text, "at": at.isoformat()}
        case EvaluationRecorded():
            s.evaluations = {**s.evaluations, f.year: f.score}
        case SelfEvaluationSubmitted():
            s.self_evaluation = {"year": f.year, "revision": f.revision, "score": f.score, "text": f.text,
                                 "at": at.isoformat()}  # fmt: skip
        case AssignmentCompleted():
            s.stage, s.deadlines, s.escalations = Stage.COMPLETED, {}, {}
        case AssignmentCancelled():
            s.stage, s.cancel_reason, s.deadlines, s.escalations = Stage.CANCELLED, f.reason, {}, {}
        case ExtensionRequested() | ExtensionApproved() | ExtensionRefused() | ManualReminderIssued():
            _apply_change(s, f, at)
        case AssignmentClosed():
            s.stage, s.deadlines, s.escalations = Stage.COMPLETED, {}, {}
            s.closure = {"year": f.year, "reason": f.reason, "at": at.isoformat()}
        case AssignmentReassigned():
            s.stage, s.cancel_reason, s.deadlines, s.escalations = Stage.CANCELLED, _handed(f.handover), {}, {}
            s.reassigned_to = f.handover
        case AssignmentRemoved():
            s.stage, s.cancel_reason, s.deadlines, s.escalations = Stage.CANCELLED, f.reason, {}, {}
            s.revision = f.revision
        case AssignmentRevised():
            _revised(s, f)
        case _:
            pass


def _apply_change(s: AssignmentState, f: Fact, at: dt.datetime) -> None:
    """Extensions and manual reminders (issue 21)."""
    match f:
        case ExtensionRequested():
            record = ExtensionRecord(
                n=f.n, deadline_key=f.deadline_key, due=f.due, new_due=f.new_due, reason=f.reason, requested_at=at
            )
            s.extensions = [*s.extensions, record]
        case ExtensionApproved() | ExtensionRefused():
            approved = isinstance(f, ExtensionApproved)
            s.extensions = [
                x.model_copy(update={
                    "status": "approved" if approved else "refused",
                    "approved_due": f.new_due if isinstance(f, ExtensionApproved) else None,
                    "decision_reason": f.reason,
                    "decided_at": at,
                }) if x.n == f.n else x
                for x in s.extensions
            ]  # fmt: skip
        case ManualReminderIssued():
            s.manual_reminders += 1


def _lapse_extension(s: AssignmentState, key: str) -> None:
    """A deadline met or closed while a request to move it was open: the request has nothing left to move."""
    if any(x.deadline_key == key and x.status == "open" for x in s.extensions):
        s.extensions = [
            x.model_copy(update={"status": "lapsed"}) if x.deadline_key == key and x.status == "open" else x
            for x in s.extensions
        ]


def _created_by_change(s: AssignmentState, f: AssignmentCreated) -> None:
    """A reassigned assignment starts where the old one stood, as the supervisor chose."""
    s.revision, s.reassigned_from = f.revision, f.handover
    h = f.handover
    if h is None:
        return
    if h.plan is not None and h.plan.get("year") == f.start_year:
        s.stage, s.plan, s.plan_revision = Stage.IMPLEMENTING, dict(h.plan), int(h.plan.get("revision", 1))
    elif h.accepted:
        s.stage = Stage.PLANNING


def _handed(h: Handover) -> str:
    return f"转办至 {h.to_unit_id}（{h.to_assignment_id}）：{h.reason}"


def _revised(s: AssignmentState, f: AssignmentRevised) -> None:
    if "role" in f.changed and f.role is not None:
        s.role = f.role
    if "horizon_year" in f.changed and f.horizon_year is not None:
        s.horizon_year = f.horizon_year
    if "lead_assignment_id" in f.changed:
        s.lead_assignment_id = f.lead_assignment_id
    if f.revision is not None:
        s.revision = f.revision


def _typed_event(fact_type: type[Fact]) -> type[Event]:
    """The envelope with `type` fixed to one fact's and `payload` validated as that fact."""
    literal: Any = Literal[fact_type.TYPE]  # built at run time, which a static checker cannot follow
    return create_model(f"{fact_type.__name__}Event", __base__=Event, type=(literal, ...), payload=(fact_type, ...))


_ANY_TYPED_EVENT: Any = Union[tuple(_typed_event(f) for f in FACT_TYPES.values())]  # noqa: UP007
_TYPED_EVENTS: TypeAdapter[Any] = TypeAdapter(Annotated[_ANY_TYPED_EVENT, Field(discriminator="type")])


def event_and_fact(data: str | bytes) -> tuple[Event, Fact | None]:
    """An event from its JSON text, and its fact when one validation can give both.

    Validating the envelope with the payload typed as its fact does in one pass what
    `Event.model_validate_json(data)` and then `event.fact()` do in two, without the
    payload's dict in between (a replay spent more time there than in the fold). The
    envelope's fields are Event's own; the event returned is then an Event whose payload is
    the fact. This is used only where it means the same thing: the payload is at its fact's
    schema version, so `fact()` would upcast nothing. Otherwise, and whenever that one pass
    refuses the text (an unknown type, a payload that is not its fact), the event comes from
    `Event.model_validate_json` (raising as it does) and the fact is left to `event.fact()`.
    """
    try:
        typed = _TYPED_EVENTS.validator.validate_json(data)  # the core validator: no wrapper per call
    except ValueError:  # pydantic's ValidationError
        return Event.model_validate_json(data), None
    fact: Fact = typed.payload
    if typed.schema_version >= fact.SCHEMA_VERSION:
        return typed, fact
    return Event.model_validate_json(data), None


def fold(events: Iterable[Event]) -> AssignmentState | None:
    state: AssignmentState | None = None
    for e in events:
        state = advance(state, e)
    return state
