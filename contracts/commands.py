"""Imperative commands: the inputs of the assignment workflow and its updates and signals.

Each update's validator rejects a command in the wrong stage, for the wrong year, from the
wrong role or with invalid content, before it touches history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Literal

from pydantic import Field

from contracts.base import Actor, Frozen, Role
from contracts.catalog import Schedule
from contracts.division_facts import Handover
from contracts.events import Evidence, IndicatorTarget, IndicatorValue, Milestone
from contracts.ids import QUARTER_PATTERN

WORKFLOW_NAME = "AssignmentWorkflow"
PROGRAMME_WORKFLOW_NAME = "ProgrammeWorkflow"
UPDATE_ACCEPT = "accept"
UPDATE_SUBMIT_PLAN = "submit_plan"
UPDATE_REVIEW_PLAN = "review_plan"
UPDATE_REPORT_PROGRESS = "report_progress"
UPDATE_REQUEST_VERIFICATION = "request_verification"
UPDATE_VERIFY = "verify"
UPDATE_CANCEL = "cancel"
SIGNAL_COOPERATING_REPORT = "cooperating_report"
QUERY_STATUS = "status"

Text = Field(default="", max_length=5000)


class Command(Frozen):
    """Every command names who sends it; `command_id` makes a retried command a no-op."""

    actor: Actor
    command_id: str | None = Field(default=None, max_length=200)


class AcceptAssignment(Command):
    pass


class SubmitAnnualPlan(Command):
    year: int = Field(ge=2000, le=2100)
    milestones: list[Milestone] = Field(min_length=1, max_length=200)
    indicators: list[IndicatorTarget] = Field(default=[], max_length=200)


class ReviewAnnualPlan(Command):
    year: int = Field(ge=2000, le=2100)
    decision: Literal["approve", "return"]
    comment: str = Text


class ReportProgress(Command):
    period: str = Field(pattern=QUARTER_PATTERN)
    percent: float = Field(ge=0, le=100)
    narrative: str = Field(min_length=1, max_length=20000)
    indicator_values: list[IndicatorValue] = Field(default=[], max_length=200)
    evidence: list[Evidence] = Field(default=[], max_length=100)


class RequestVerification(Command):
    note: str = Text


class VerifyYear(Command):
    decision: Literal["pass", "fail"]
    findings: str = Text
    score: float | None = Field(default=None, ge=0, le=100)  # required in evaluation years


class SubmitTaskSummary(Command):
    """The lead unit's consolidated annual summary (汇总) of its task; a later one replaces it."""

    year: int = Field(ge=2000, le=2100)
    text: str = Field(min_length=1, max_length=20000)


class SubmitSelfEvaluation(Command):
    """A unit's self-evaluation (自评) for a five-year evaluation year: text and its own score; a later one
    replaces it. The verifier's score comes with the year's verification (VerifyYear.score)."""

    year: int = Field(ge=2000, le=2100)
    text: str = Field(min_length=1, max_length=20000)
    score: float = Field(ge=0, le=100)


class CancelAssignment(Command):
    reason: str = Field(min_length=1, max_length=5000)


# ---- changes during the year (issue 21): extensions, manual reminders, early closure -------------

Reason = Field(min_length=1, max_length=5000)


class RequestExtension(Command):
    """A unit asks to move one of its open deadlines (延期申请) to a later date in the same year."""

    deadline_key: str = Field(min_length=1, max_length=100)
    new_due: dt.date
    reason: str = Reason


class DecideExtension(Command):
    """A supervisor approves (with the requested date, or `new_due`) or refuses request `n`."""

    n: int = Field(ge=1, le=100000)
    decision: Literal["approve", "refuse"]
    new_due: dt.date | None = None
    reason: str = Text


class RemindAssignment(Command):
    """A supervisor chases the unit by hand (催办) with a message."""

    message: str = Field(min_length=1, max_length=2000)


class CloseAssignment(Command):
    """A supervisor closes the task for the unit before its horizon (办结销号)."""

    reason: str = Reason


class CooperatingReport(Frozen):
    """Signal to the lead's workflow: a cooperating unit reported."""

    from_assignment_id: str
    from_unit_id: str
    year: int
    period: str
    percent: float
    narrative: str


class AssignmentSpec(Frozen):
    """What an assignment is: fixed for its whole life."""

    programme_id: str
    assignment_id: str
    task_no: int
    task_title: str
    unit_id: str
    role: Role
    horizon_year: int
    lead_assignment_id: str | None = None
    schedule: Schedule
    handover: Handover | None = None  # a reassignment: where this assignment starts (not at acceptance)
    revision: int | None = None  # added by this revision of the division


# ---- changes to the division (sent by the assignment service, which keeps the division) ---------

UPDATE_REASSIGN = "reassign"
UPDATE_REMOVE = "remove"
UPDATE_REVISE = "revise"
Reason = Field(min_length=1, max_length=2000)


class ReassignAssignment(Command):
    """转办: close this assignment; it continues as `to_assignment_id` (a new id) with `to_unit`."""

    to_unit: str = Field(min_length=1, max_length=64)
    to_assignment_id: str = Field(min_length=1, max_length=200)
    reason: str = Reason
    carry_acceptance: bool = True
    carry_plan: bool = True


class RemoveAssignment(Command):
    """A revised division dropped this responsibility."""

    revision: int = Field(ge=1)
    reason: str = Reason


class ReviseAssignment(Command):
    """The responsibility changed: role, horizon or lead (the fields named in `changed`)."""

    reason: str = Reason
    revision: int | None = Field(default=None, ge=1)
    changed: list[Literal["role", "horizon_year", "lead_assignment_id"]] = Field(min_length=1)
    role: Role | None = None
    horizon_year: int | None = Field(default=None, ge=2000, le=2100)
    lead_assignment_id: str | None = Field(default=None, max_length=200)


class CommandResult(Frozen):
    """What an update returns: the events it produced (ids) and the stage it left."""

    accepted: bool = True
    event_ids: list[str] = []
    n: int | None = None  # the number of the extension request the command made
    stage: str
    year: int
    # request_digest of the command that got this result ("" from before it was kept): a key sent
    # again with a different request is refused, not answered with this result
    request: str = ""


KEY_REUSED = "IdempotencyKeyReused"  # the ApplicationError type of that refusal
KEY_REUSED_WORDS = (
    "该 Idempotency-Key 已用于另一个不同的请求，本次请求未办理；新的请求请使用新的键 "
    "(key used with a different request: this one was not carried out; send a new request with a new key)"
)


def request_digest(update: str, command: Command) -> str:
    """What a command asks, whoever sends it, apart from its key: equal for a retry of the same request."""
    asked = {"update": update, "command": command.model_dump(mode="json", exclude={"command_id"})}
    text = json.dumps(asked, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()
