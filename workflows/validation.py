"""Why a command is refused, in words the sender can act on. Pure: state, spec, command, today.

Each check returns None (acceptable) or the reason. Order: who may send it (checked first,
so a stranger learns nothing about the assignment), then whether the assignment is still
open, then stage and year, then content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from contracts.base import Actor, Stage, UserRole
from contracts.commands import (
    AcceptAssignment,
    AssignmentSpec,
    CancelAssignment,
    ReportProgress,
    RequestVerification,
    ReviewAnnualPlan,
    SubmitAnnualPlan,
    VerifyYear,
)
from contracts.fold import AssignmentState
from workflows.deadlines import parse_period, quarter_start

Sender = Literal["department", "supervisor", "verifier"]
Check = Callable[[AssignmentState, AssignmentSpec, Any, dt.date], str | None]


def sender_reason(spec: AssignmentSpec, actor: Actor, sender: Sender, what: str) -> str | None:
    if sender == "department":
        if actor.role != UserRole.DEPARTMENT:
            return f"{what} must come from unit {spec.unit_id}; {actor.sub} has role {actor.role.value}"
        if actor.unit_id != spec.unit_id:
            return f"{what} must come from unit {spec.unit_id}; {actor.sub} belongs to unit {actor.unit_id or 'none'}"
        return None
    allowed = {UserRole.SUPERVISOR} | ({UserRole.VERIFIER} if sender == "verifier" else set())
    if actor.role not in allowed:
        who = "verifiers and supervisors" if sender == "verifier" else "supervisors"
        return f"{what} is for {who}; {actor.sub} has role {actor.role.value}"
    return None


def closed_reason(s: AssignmentState) -> str | None:
    if s.stage == Stage.CANCELLED:
        return f"assignment {s.assignment_id} is cancelled ({s.cancel_reason}): it takes no further commands"
    if s.stage == Stage.COMPLETED:
        return f"assignment {s.assignment_id} is completed (horizon {s.horizon_year}): it takes no further commands"
    return None


def where(s: AssignmentState) -> str:
    return f"stage is {s.stage.value} for {s.year}"


def accept(s: AssignmentState, spec: AssignmentSpec, cmd: AcceptAssignment, today: dt.date) -> str | None:
    if s.stage != Stage.ASSIGNED:
        return f"assignment is already accepted: {where(s)}"
    return None


def submit_plan(s: AssignmentState, spec: AssignmentSpec, cmd: SubmitAnnualPlan, today: dt.date) -> str | None:
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


def review_plan(s: AssignmentState, spec: AssignmentSpec, cmd: ReviewAnnualPlan, today: dt.date) -> str | None:
    if s.stage != Stage.PLAN_SUBMITTED or cmd.year != s.year:
        return f"no annual plan for {cmd.year} awaits review: {where(s)}"
    if cmd.decision == "return" and not cmd.comment.strip():
        return "returning a plan needs the reasons in `comment`, so the unit knows what to change"
    return None


def report_progress(s: AssignmentState, spec: AssignmentSpec, cmd: ReportProgress, today: dt.date) -> str | None:
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
    s: AssignmentState, spec: AssignmentSpec, cmd: RequestVerification, today: dt.date
) -> str | None:
    if s.stage != Stage.IMPLEMENTING:
        return f"verification for {s.year} cannot be requested: {where(s)}"
    return None


def verify(s: AssignmentState, spec: AssignmentSpec, cmd: VerifyYear, today: dt.date) -> str | None:
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


def cancel(s: AssignmentState, spec: AssignmentSpec, cmd: CancelAssignment, today: dt.date) -> str | None:
    if not cmd.reason.strip():
        return "cancelling needs a reason"
    return None


# command type -> (who may send it, what it is called in messages, its check)
RULES: dict[type, tuple[Sender, str, Check]] = {
    AcceptAssignment: ("department", "accepting the assignment", accept),
    SubmitAnnualPlan: ("department", "an annual plan", submit_plan),
    ReviewAnnualPlan: ("supervisor", "reviewing a plan", review_plan),
    ReportProgress: ("department", "a progress report", report_progress),
    RequestVerification: ("department", "a verification request", request_verification),
    VerifyYear: ("verifier", "verification", verify),
    CancelAssignment: ("supervisor", "cancelling", cancel),
}


def reason(s: AssignmentState, spec: AssignmentSpec, cmd: Any, today: dt.date) -> str | None:
    """Why `cmd` is refused, or None."""
    sender, what, check = RULES[type(cmd)]
    return sender_reason(spec, cmd.actor, sender, what) or closed_reason(s) or check(s, spec, cmd, today)
