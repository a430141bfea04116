"""Request and response bodies of the HTTP APIs."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, create_model

from contracts.base import Frozen, OverdueLevel, Role, Stage
from contracts.catalog import Division, Programme, Schedule, Unit, UnitKind
from contracts.commands import (
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
from contracts.division_facts import DivisionChange, DivisionLine, Handover
from contracts.events import Deadline
from contracts.ids import PROGRAMME_ID_PATTERN
from contracts.indicators import ProgrammeOutcomes
from contracts.programme_calendar import ProgrammeCalendar

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


class ErrorBody(Frozen):
    detail: str


class ProgrammeImport(Frozen):
    """POST /v1/programmes: a parsed programme, its division of work and its schedule."""

    programme_id: str = Field(pattern=PROGRAMME_ID_PATTERN)
    programme: Programme
    units: list[Unit]  # the registry the division refers to
    division: Division
    schedule: Schedule
    outcomes: ProgrammeOutcomes = ProgrammeOutcomes()  # indicators.yaml (none: no indicators, example scoring)
    calendar: ProgrammeCalendar = ProgrammeCalendar()  # calendar.yaml: bulletins, score snapshots, evaluations


class ProgrammeOut(Frozen):
    programme_id: str
    document_no: str
    title: str
    issued_on: dt.date | None
    task_count: int
    responsibility_count: int
    example_division: bool
    schedule: Schedule
    programme: Programme
    imported: bool = True  # False when the same programme was already stored


class DispatchResult(Frozen):
    programme_id: str
    started: int
    skipped: int
    total: int
    message: str


DispatchState = Literal["not_started", "running", "done", "failed"]


class DispatchStatus(Frozen):
    """GET /v1/programmes/{id}/dispatch, and POST .../dispatch?wait=false (202).

    Counts are None when this service process did not run the dispatch itself
    (it was dispatched before the service last restarted).
    """

    programme_id: str
    state: DispatchState
    total: int
    started: int | None
    skipped: int | None
    failed: int | None
    message: str
    dispatched_at: dt.datetime | None = None


class UnitOut(Frozen):
    unit_id: str
    name: str
    kind: UnitKind


class AssignmentSummary(Frozen):
    assignment_id: str
    programme_id: str
    task_no: int
    task_title: str = ""
    unit_id: str
    role: Role
    stage: Stage
    year: int
    overdue_level: OverdueLevel
    next_deadline: Deadline | None = None
    percent: float = 0.0


class AssignmentDetail(AssignmentSummary):
    horizon_year: int
    deadlines: list[Deadline] = []
    lead_assignment_id: str | None = None
    plan: dict[str, Any] | None = None
    last_report: dict[str, Any] | None = None
    last_verification: dict[str, Any] | None = None  # the year's latest verdict: findings, rework_due
    summary: dict[str, Any] | None = None  # a lead's consolidated annual summary (汇总)
    self_evaluation: dict[str, Any] | None = None  # the unit's self-evaluation (自评): year, score, text
    evaluations: dict[int, float] = {}  # the verifiers' five-year evaluation scores by year
    extensions: list[dict[str, Any]] = []  # extension requests (延期申请), oldest first
    closure: dict[str, Any] | None = None  # an early closure (销号): year, reason, at
    counts: dict[str, int] = {}
    workflow_id: str
    closed_reason: str | None = None  # cancelled, reassigned (转办) or removed by a revision: why
    reassigned_from: Handover | None = None  # 转办: the assignment this one continues, and why
    reassigned_to: Handover | None = None  # 转办: the assignment that continues this one
    revision: int | None = None  # the division's revision that last added or changed it


def body_of(command: type[Command], name: str, *path_fields: str) -> type[Frozen]:
    """The HTTP request body of a command: its fields, less the sender (the token says who) and
    the fields that the URL's path carries."""
    taken = {"actor", "command_id", *path_fields}
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in command.model_fields.items() if n not in taken}
    return create_model(name, __base__=Frozen, __module__=__name__, **fields)


PlanBody = body_of(SubmitAnnualPlan, "PlanBody")
ReviewBody = body_of(ReviewAnnualPlan, "ReviewBody", "year")
ReportBody = body_of(ReportProgress, "ReportBody")
VerificationRequestBody = body_of(RequestVerification, "VerificationRequestBody")
VerificationBody = body_of(VerifyYear, "VerificationBody")
CancelBody = body_of(CancelAssignment, "CancelBody")
SummaryBody = body_of(SubmitTaskSummary, "SummaryBody")
SelfEvaluationBody = body_of(SubmitSelfEvaluation, "SelfEvaluationBody")
ExtensionBody = body_of(RequestExtension, "ExtensionBody")
ExtensionDecisionBody = body_of(DecideExtension, "ExtensionDecisionBody", "n")
ReminderBody = body_of(RemindAssignment, "ReminderBody")
ClosureBody = body_of(CloseAssignment, "ClosureBody")


class CommandAccepted(Frozen):
    assignment_id: str
    stage: Stage
    year: int
    event_ids: list[str]
    replayed: bool = False  # True when an Idempotency-Key matched an earlier submission
    n: int | None = None  # an extension request's number, for its decision's URL


class LeadTask(Frozen):
    """A task as its lead unit (牵头单位) sees it: every assignment of the task, counted."""

    programme_id: str
    task_no: int
    task_title: str
    lead_unit_ids: list[str]
    assignments: int
    by_stage: dict[str, int]
    overdue: dict[str, int]  # blue / yellow / red
    reports: int
    summary: dict[str, Any] | None = None  # the lead's latest consolidated summary (汇总)


class LeadTaskDetail(LeadTask):
    items: list[AssignmentDetail]  # the lead's own assignment first, then the others by unit


# ---- 催办 to many assignments at once (issue 21) --------------------------------------------------

BulkState = Literal["preview", "running", "done", "failed"]


class BulkReminderBody(Frozen):
    """POST /v1/reminders: one message to every open assignment matching the filter, at most `limit`."""

    message: str = Field(min_length=1, max_length=2000)
    programme_id: str | None = Field(default=None, pattern=PROGRAMME_ID_PATTERN)
    unit_id: str | None = Field(default=None, max_length=64)
    task_no: int | None = Field(default=None, ge=1, le=999)
    stage: Stage | None = None
    overdue: Literal["none", "blue", "yellow", "red", "any"] | None = None
    limit: int = Field(default=500, ge=1, le=200_000)
    dry_run: bool = False  # true: only count what would be reminded


class BulkReminderStatus(Frozen):
    """The preview (dry run), or a sending's progress: `GET /v1/reminders/{job_id}`."""

    job_id: str | None = None
    state: BulkState
    matched: int  # open assignments matching the filter
    limit: int
    sent: int = 0
    failed: int = 0
    first_failure: str | None = None
    message: str


# ---- changes to the division: reassignment (转办), an added unit, a revised division ----------------


class ReassignBody(Frozen):
    """POST /v1/assignments/{id}/reassign on the assignment service (supervisors)."""

    to_unit: str = Field(min_length=1, max_length=64, description="the unit that takes the assignment over")
    reason: str = Field(min_length=1, max_length=2000)
    carry_acceptance: bool = Field(default=True, description="the new unit starts accepted if the old one was")
    carry_plan: bool = Field(default=True, description="and with this year's approved plan, if there is one")


class ReassignResult(Frozen):
    assignment_id: str  # the old one, now closed
    reassigned_to: str  # the new assignment (a new id)
    to_unit: str
    starts: Literal["assigned", "accepted", "implementing"]  # where the new one starts
    event_ids: list[str]  # the old assignment's closing events
    leads_updated: list[str] = []  # cooperating assignments told of their new lead


class RevisionRequest(Frozen):
    """POST /v1/programmes/{id}/revisions: the revised programme; a dry run first, then the apply."""

    programme: ProgrammeImport
    dry_run: bool = True
    version: str | None = Field(default=None, max_length=64, description="the dry run's version (to apply)")
    force: bool = Field(default=False, description="remove assignments that have progress reports")
    reason: str = Field(default="", max_length=2000)


class AddUnitBody(Frozen):
    """POST /v1/programmes/{id}/tasks/{task_no}/units: a unit joins a task (a one-line revision)."""

    unit_id: str = Field(min_length=1, max_length=64)
    role: Role = Role.COOPERATING
    horizon_year: int | None = Field(default=None, ge=2000, le=2100, description="default: the task's lead's")
    reason: str = Field(min_length=1, max_length=2000)


class ReportsHeld(Frozen):
    assignment_id: str
    unit_id: str
    reports: int


RevisionState = Literal["dry_run", "unchanged", "running", "done", "failed"]


class RevisionAnswer(Frozen):
    programme_id: str
    revision: int  # the number it would get (dry run) or got
    version: str
    state: RevisionState
    added: list[DivisionLine] = []
    removed: list[DivisionLine] = []
    changed: list[DivisionChange] = []
    removed_with_reports: list[ReportsHeld] = []
    warnings: list[str] = []  # a dry run: what a person should look at before applying (no refusal)
    followed: int | None = None  # workflows started or updated so far
    failed: int | None = None
    message: str
