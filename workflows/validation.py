"""Why a command is refused, in words the sender can act on. Pure: state, spec, command, today.

Each check returns None (acceptable) or the reason. Order: who may send it (checked first,
so a stranger learns nothing about the assignment), then whether the assignment is still
open, then stage and year, then content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from contracts.base import Actor, Role, Stage, UserRole
from contracts.command_table import CommandRow
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
from contracts.events import Deadline
from contracts.fold import AssignmentState
from workflows import changes
from workflows.deadlines import parse_period, quarter_start

Check = Callable[[AssignmentState, AssignmentSpec, Any, dt.date], str | None]


def sender_reason(spec: AssignmentSpec, actor: Actor, row: CommandRow) -> str | None:
    """The row's senders; a department only for its own unit's assignment."""
    if actor.role not in row.senders:
        if row.senders == (UserRole.DEPARTMENT,):
            return f"{row.what} must come from unit {spec.unit_id}; {actor.sub} has role {actor.role.value}"
        who = " and ".join(f"{r.value}s" for r in row.senders)
        return f"{row.what} is for {who}; {actor.sub} has role {actor.role.value}"
    if actor.role == UserRole.DEPARTMENT and actor.unit_id != spec.unit_id:
        return f"{row.what} must come from unit {spec.unit_id}; {actor.sub} belongs to unit {actor.unit_id or 'none'}"
    return None


def closed_reason(s: AssignmentState) -> str | None:
    if s.stage == Stage.CANCELLED:
        return f"assignment {s.assignment_id} is cancelled ({s.cancel_reason}): it takes no further commands"
    if s.closure is not None:
        return f"assignment {s.assignment_id} was closed (销号): {s.closure['reason']}; it takes no further commands"
    if s.stage == Stage.COMPLETED:
        return f"assignment {s.assignment_id} is completed (horizon {s.horizon_year}): it takes no further commands"
    return None


def where(s: AssignmentState) -> str:
    return f"stage is {s.stage.value} for {s.year}"


def accept(s: AssignmentState, _spec: AssignmentSpec, _cmd: AcceptAssignment, _today: dt.date) -> str | None:
    if s.stage != Stage.ASSIGNED:
        return f"assignment is already accepted: {where(s)}"
    return None


def submit_plan(s: AssignmentState, _spec: AssignmentSpec, cmd: SubmitAnnualPlan, _today: dt.date) -> str | None:
    if s.stage != Stage.PLANNING or cmd.year != s.year:
        return f"annual plan for {cmd.year} is not open: {where(s)}"
    for m in cmd.milestones:
        if m.due.year != cmd.year:
            return f"milestone '{m.title}' is due {m.due.isoformat()}, outside the plan year {cmd.year}"
    names = [i.name for i in cmd.indicators]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        return f"indicator '{duplicated[0]}' appears more than once in the plan"
    return None


def review_plan(s: AssignmentState, _spec: AssignmentSpec, cmd: ReviewAnnualPlan, _today: dt.date) -> str | None:
    if s.stage != Stage.PLAN_SUBMITTED or cmd.year != s.year:
        return f"no annual plan for {cmd.year} awaits review: {where(s)}"
    if cmd.decision == "return" and not cmd.comment.strip():
        return "returning a plan needs the reasons in `comment`, so the unit knows what to change"
    return None


def report_progress(s: AssignmentState, _spec: AssignmentSpec, cmd: ReportProgress, today: dt.date) -> str | None:
    if s.stage != Stage.IMPLEMENTING:
        return f"progress for {cmd.period} cannot be reported: {where(s)}"
    year, quarter = parse_period(cmd.period)
    if year != s.year:
        return f"progress for {cmd.period} cannot be reported: the assignment is working on {s.year}"
    begins = quarter_start(year, quarter)
    if begins > today:
        return f"progress for {cmd.period} cannot be reported before the quarter begins on {begins.isoformat()}"
    planned = [i["name"] for i in (s.plan or {}).get("indicators", [])]
    for value in cmd.indicator_values:
        if value.name not in planned:
            known = ", ".join(planned) or "none"
            return f"indicator '{value.name}' is not in the approved plan for {s.year} (plan indicators: {known})"
    return None


def request_verification(
    s: AssignmentState, _spec: AssignmentSpec, _cmd: RequestVerification, _today: dt.date
) -> str | None:
    if s.stage != Stage.IMPLEMENTING:
        return f"verification for {s.year} cannot be requested: {where(s)}"
    return None


def verify(s: AssignmentState, spec: AssignmentSpec, cmd: VerifyYear, _today: dt.date) -> str | None:
    if s.stage != Stage.VERIFYING:
        return f"nothing awaits verification: {where(s)}"
    evaluation = s.year in spec.schedule.evaluation_years
    if cmd.decision == "fail":
        if not cmd.findings.strip():
            return "a failed verification needs `findings`, so the unit knows what to rework"
        if cmd.score is not None:
            return "a failed verification has no score: the evaluation score comes with the pass"
        return None
    if evaluation and cmd.score is None:
        return f"{s.year} is a five-year evaluation year: passing it needs a `score` (0-100)"
    if not evaluation and cmd.score is not None:
        return f"{s.year} is not an evaluation year: leave the score out"
    return None


def submit_summary(s: AssignmentState, _spec: AssignmentSpec, cmd: SubmitTaskSummary, _today: dt.date) -> str | None:
    if s.role != Role.LEAD:
        return f"only the task's lead unit writes its summary (汇总); {s.unit_id} is {s.role.value} on this task"
    if s.stage == Stage.ASSIGNED:
        return "accept the assignment before writing the task's summary"
    if cmd.year != s.year:
        return f"the summary is for the year being worked on, {s.year}, not {cmd.year}"
    if not cmd.text.strip():
        return "the summary is empty"
    return None


def submit_self_evaluation(
    s: AssignmentState, spec: AssignmentSpec, cmd: SubmitSelfEvaluation, _today: dt.date
) -> str | None:
    if s.stage == Stage.ASSIGNED:
        return "accept the assignment before its self-evaluation"
    if cmd.year not in spec.schedule.evaluation_years:
        years = ", ".join(str(y) for y in spec.schedule.evaluation_years) or "none"
        return f"{cmd.year} is not a five-year evaluation year of this programme (evaluation years: {years})"
    if cmd.year != s.year:
        return f"the self-evaluation is for the year being worked on, {s.year}, not {cmd.year}"
    if s.year in s.years_verified:
        return f"{s.year} is already verified: its evaluation is closed"
    if not cmd.text.strip():
        return "the self-evaluation is empty"
    return None


def cancel(_s: AssignmentState, _spec: AssignmentSpec, cmd: CancelAssignment, _today: dt.date) -> str | None:
    if not cmd.reason.strip():
        return "cancelling needs a reason"
    return None


# ---- changes during the year (issue 21) ------------------------------------------------------------


def new_date_reason(d: Deadline, new_due: dt.date, today: dt.date) -> str | None:
    """Whether `d` may move to `new_due`: later than now in force, not past, within its programme year."""
    if new_due <= d.due:
        return f"the new date {new_due.isoformat()} is not later than {d.key}'s due date {d.due.isoformat()}"
    if new_due < today:
        return f"the new date {new_due.isoformat()} has already passed (today is {today.isoformat()})"
    if new_due.year != d.year:
        return f"the new date {new_due.isoformat()} is outside the programme year {d.year} of {d.key}"
    return None


def request_extension(s: AssignmentState, _spec: AssignmentSpec, cmd: RequestExtension, today: dt.date) -> str | None:
    if s.stage == Stage.VERIFYING:
        return f"verification for {s.year} has been requested: the year's deadlines can no longer be extended"
    d = s.deadlines.get(cmd.deadline_key)
    if d is None:
        known = ", ".join(sorted(k for k, x in s.deadlines.items() if x.kind != "review")) or "none"
        return f"deadline {cmd.deadline_key} is not open (open deadlines: {known})"
    if d.kind == "review":
        return f"{d.key} is the verifier's deadline, not the unit's: it cannot be extended on request"
    if d.year in s.years_verified:
        return f"{d.year} is verified: its deadlines can no longer be extended"
    pending = s.open_extension(d.key)
    if pending is not None:
        return f"extension request {pending.n} for {d.key} is still open: wait for the supervisor's decision"
    if not cmd.reason.strip():
        return "an extension request needs a reason"
    return new_date_reason(d, cmd.new_due, today)


def decide_extension(s: AssignmentState, _spec: AssignmentSpec, cmd: DecideExtension, today: dt.date) -> str | None:
    record = next((x for x in s.extensions if x.n == cmd.n), None)
    if record is None:
        return f"there is no extension request {cmd.n} (requests: {len(s.extensions)})"
    if record.status != "open":
        return f"extension request {cmd.n} is already {record.status}"
    if cmd.decision == "refuse":
        if not cmd.reason.strip():
            return "refusing an extension needs the reason, so the unit knows why"
        if cmd.new_due is not None:
            return "a refusal moves no date: leave new_due out"
        return None
    d = s.deadlines.get(record.deadline_key)
    if d is None:  # the fold lapses a request whose deadline closed; kept for safety
        return f"deadline {record.deadline_key} is no longer open"
    return new_date_reason(d, cmd.new_due or record.new_due, today)


def remind(_s: AssignmentState, _spec: AssignmentSpec, cmd: RemindAssignment, _today: dt.date) -> str | None:
    if not cmd.message.strip():
        return "a reminder needs a message"
    return None


def close(_s: AssignmentState, _spec: AssignmentSpec, cmd: CloseAssignment, _today: dt.date) -> str | None:
    if not cmd.reason.strip():
        return "closing an assignment (销号) needs a reason"
    return None


# The command's own rule; who may send it is the command table's.
CHECKS: dict[type[Command], Check] = {
    AcceptAssignment: accept,
    SubmitAnnualPlan: submit_plan,
    ReviewAnnualPlan: review_plan,
    ReportProgress: report_progress,
    RequestVerification: request_verification,
    VerifyYear: verify,
    SubmitTaskSummary: submit_summary,
    SubmitSelfEvaluation: submit_self_evaluation,
    CancelAssignment: cancel,
    RequestExtension: request_extension,
    DecideExtension: decide_extension,
    RemindAssignment: remind,
    CloseAssignment: close,
    **changes.CHECKS,
}


def reason(s: AssignmentState, spec: AssignmentSpec, row: CommandRow, cmd: Command, today: dt.date) -> str | None:
    """Why `cmd` is refused, or None: sender first (a stranger learns nothing), then open, then the rule."""
    return sender_reason(spec, cmd.actor, row) or closed_reason(s) or CHECKS[type(cmd)](s, spec, cmd, today)
