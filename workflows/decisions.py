"""What each command (or the clock) makes happen: pure functions from state to facts.

The workflow turns the facts into events and folds them; which deadlines a fact opens and
closes is decided here, from the rules in `workflows.deadlines`.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from contracts.base import OverdueLevel, Stage
from contracts.catalog import DeadlineRules
from contracts.commands import (
    AcceptAssignment,
    AssignmentSpec,
    CancelAssignment,
    CloseAssignment,
    Command,
    DecideExtension,
    RemindAssignment,
    ReportProgress,
    RequestExtension,
    RequestVerification,
    ReviewAnnualPlan,
    SubmitAnnualPlan,
    SubmitSelfEvaluation,
    SubmitTaskSummary,
    VerifyYear,
)
from contracts.events import (
    AnnualPlanApproved,
    AnnualPlanReturned,
    AnnualPlanSubmitted,
    AssignmentAccepted,
    AssignmentCancelled,
    AssignmentClosed,
    AssignmentCompleted,
    AssignmentCreated,
    Deadline,
    DeadlinesRecomputed,
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
from contracts.fold import AssignmentState
from workflows import changes
from workflows import deadlines as rules
from workflows.calendar import WorkingCalendar


def track_notices(notices: dict[str, str], fact: Fact) -> None:
    """Which notice each deadline has had: a closed or (re)opened deadline starts with none."""
    if isinstance(fact, DeadlinesRecomputed):
        return  # the same obligation on a corrected calendar: what was issued for it stands
    for key in [*fact.closes, *(d.key for d in fact.opens)]:
        notices.pop(key, None)
    if isinstance(fact, SupervisionEscalated):
        notices[fact.deadline.key] = fact.level.value
    elif isinstance(fact, ReminderIssued):
        notices[fact.deadline.key] = "reminder"


def first_year(spec: AssignmentSpec, today: dt.date) -> int:
    """A late dispatch starts in the current year: nobody plans for a year already gone."""
    return max(spec.schedule.start_year, today.year)


def about_to_be_created(spec: AssignmentSpec, today: dt.date) -> AssignmentState:
    """The state `created` will lead to: for validating a command sent along with the start."""
    return AssignmentState(
        assignment_id=spec.assignment_id,
        programme_id=spec.programme_id,
        task_no=spec.task_no,
        unit_id=spec.unit_id,
        role=spec.role,
        year=first_year(spec, today),
        horizon_year=spec.horizon_year,
    )


def created(spec: AssignmentSpec, cal: WorkingCalendar, today: dt.date) -> AssignmentCreated:
    year = first_year(spec, today)
    return AssignmentCreated(
        task_title=spec.task_title,
        role=spec.role,
        start_year=year,
        horizon_year=spec.horizon_year,
        lead_assignment_id=spec.lead_assignment_id,
        evaluation_years=spec.schedule.evaluation_years,
        handover=spec.handover,
        revision=spec.revision,
        opens=first_deadlines(spec, cal, today, year),
    )


def first_deadlines(spec: AssignmentSpec, cal: WorkingCalendar, today: dt.date, year: int) -> list[Deadline]:
    """Acceptance; or, for a reassignment carrying the old unit's acceptance (and plan), what comes after."""
    r, h = spec.schedule.rules, spec.handover
    if h is not None and h.plan is not None and h.plan.get("year") == year:
        return [*rules.quarterly_reports(cal, r, year, today), rules.verification_request(cal, r, year)]
    if h is not None and h.accepted:
        return [rules.first_annual_plan(cal, r, today, year)]
    return [rules.acceptance(cal, r, today, year)]


def notice(cal: WorkingCalendar, r: DeadlineRules, d: Deadline, sent: str | None, today: dt.date) -> Fact | None:
    """The reminder or escalation `d` earns today, if one is due and not yet issued."""
    n = rules.due_notice(cal, r, d, sent, today)
    if n is None:
        return None
    if n.level == "reminder":
        return ReminderIssued(deadline=d)
    overdue = max(n.working_days_overdue, cal.working_days_between(d.due, today))
    return SupervisionEscalated(deadline=d, level=OverdueLevel(n.level), working_days_overdue=overdue)


def year_end_applies(s: AssignmentState) -> bool:
    """Implementing with no rework open: the year's end hands the work to verification.

    After a failed verification the rework deadline governs, not the calendar year.
    """
    return s.stage == Stage.IMPLEMENTING and f"rework:{s.year}" not in s.deadlines


def verification_requested(
    s: AssignmentState,
    cal: WorkingCalendar,
    r: DeadlineRules,
    reason: Literal["declared_done", "year_end"],
    note: str,
    today: dt.date,
) -> VerificationRequested:
    y = s.year
    reports = [f"report:{rules.period(y, q)}" for q in (1, 2, 3)]
    return VerificationRequested(
        year=y,
        reason=reason,
        note=note,
        closes=_open(s, f"verification:{y}", f"rework:{y}", *reports),
        opens=[rules.verifier_decision(cal, r, y, today)],
    )


def _open(s: AssignmentState, *keys: str) -> list[str]:
    return [k for k in keys if k in s.deadlines]


def decide(
    s: AssignmentState, cal: WorkingCalendar, r: DeadlineRules, cmd: Command, today: dt.date, spec: AssignmentSpec
) -> list[Fact]:
    """The facts a validated command produces, in order."""
    if type(cmd) in changes.CHECKS:
        return changes.decide(s, spec, cmd)
    y = s.year
    match cmd:
        case AcceptAssignment():
            first_plan = rules.first_annual_plan(cal, r, today, y)
            return [AssignmentAccepted(year=y, closes=_open(s, "acceptance"), opens=[first_plan])]
        case SubmitAnnualPlan():
            return [
                AnnualPlanSubmitted(
                    year=y,
                    revision=s.plan_revision + 1,
                    milestones=cmd.milestones,
                    indicators=cmd.indicators,
                    closes=_open(s, f"annual_plan:{y}"),
                )
            ]
        case ReviewAnnualPlan(decision="approve"):
            opens = [*rules.quarterly_reports(cal, r, y, today), rules.verification_request(cal, r, y)]
            return [AnnualPlanApproved(year=y, revision=s.plan_revision, comment=cmd.comment, opens=opens)]
        case ReviewAnnualPlan():
            reopened = rules.resubmitted_plan(cal, r, y, today)
            return [AnnualPlanReturned(year=y, revision=s.plan_revision, reasons=cmd.comment, opens=[reopened])]
        case ReportProgress():
            return [
                ProgressReported(
                    year=y,
                    period=cmd.period,
                    percent=cmd.percent,
                    narrative=cmd.narrative,
                    indicator_values=cmd.indicator_values,
                    evidence=cmd.evidence,
                    closes=_open(s, f"report:{cmd.period}"),
                )
            ]
        case RequestVerification():
            return [verification_requested(s, cal, r, "declared_done", cmd.note, today)]
        case VerifyYear(decision="fail"):
            redo = rules.rework(cal, r, y, today)
            closes = _open(s, f"review:{y}")
            return [VerificationFailed(year=y, findings=cmd.findings, rework_due=redo.due, closes=closes, opens=[redo])]
        case VerifyYear():
            facts: list[Fact] = [VerificationPassed(year=y, findings=cmd.findings, closes=_open(s, f"review:{y}"))]
            if cmd.score is not None:
                facts.append(EvaluationRecorded(year=y, score=cmd.score, findings=cmd.findings))
            if y >= s.horizon_year:
                facts.append(AssignmentCompleted(year=y, closes=sorted(s.deadlines)))
            else:
                facts.append(YearStarted(year=y + 1, opens=[rules.annual_plan(cal, r, y + 1, today)]))
            return facts
        case SubmitTaskSummary():
            revision = (s.summary or {}).get("revision", 0) + 1 if (s.summary or {}).get("year") == y else 1
            return [TaskSummarySubmitted(year=y, revision=revision, text=cmd.text)]
        case SubmitSelfEvaluation():
            mine = s.self_evaluation or {}
            revision = mine.get("revision", 0) + 1 if mine.get("year") == y else 1
            return [SelfEvaluationSubmitted(year=y, revision=revision, score=cmd.score, text=cmd.text)]
        case CancelAssignment():
            return [AssignmentCancelled(reason=cmd.reason, closes=sorted(s.deadlines))]
        case RequestExtension() | DecideExtension() | RemindAssignment() | CloseAssignment():
            return decide_change(s, cmd)
    raise TypeError(f"unknown command {type(cmd).__name__}")


def decide_change(s: AssignmentState, cmd: Command) -> list[Fact]:
    """Extensions, manual reminders and early closure (issue 21)."""
    match cmd:
        case RequestExtension():
            d = s.deadlines[cmd.deadline_key]
            n = len(s.extensions) + 1
            return [ExtensionRequested(n=n, deadline_key=d.key, due=d.due, new_due=cmd.new_due, reason=cmd.reason)]
        case DecideExtension(decision="refuse"):
            record = next(x for x in s.extensions if x.n == cmd.n)
            return [ExtensionRefused(n=cmd.n, deadline_key=record.deadline_key, reason=cmd.reason)]
        case DecideExtension():
            record = next(x for x in s.extensions if x.n == cmd.n)
            d = s.deadlines[record.deadline_key]
            moved = d.model_copy(update={"due": cmd.new_due or record.new_due})
            facts: list[Fact] = [
                ExtensionApproved(
                    n=cmd.n, deadline_key=d.key, old_due=d.due, new_due=moved.due, reason=cmd.reason, opens=[moved]
                )
            ]
            if d.key in s.escalations:  # the new date is later: the lateness the escalation named is gone
                facts.append(EscalationCleared(deadline_key=d.key))
            return facts
        case RemindAssignment():
            return [ManualReminderIssued(message=cmd.message, deadline=s.next_deadline())]
        case CloseAssignment():
            return [AssignmentClosed(year=s.year, reason=cmd.reason, closes=sorted(s.deadlines))]
    raise TypeError(f"unknown command {type(cmd).__name__}")


def request_number(events: list[Event]) -> int | None:
    """The number of the extension request among `events`, for the command's answer."""
    return next((e.payload["n"] for e in events if e.type == ExtensionRequested.TYPE), None)
