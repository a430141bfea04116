"""Request and response bodies of the HTTP APIs."""

from __future__ import annotations

import datetime as dt
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from contracts.base import Frozen, OverdueLevel, Role, Stage
from contracts.catalog import Division, Programme, Schedule, Unit, UnitKind
from contracts.commands import PERIOD_PATTERN
from contracts.events import Deadline, Evidence, IndicatorTarget, IndicatorValue, Milestone
from contracts.ids import PROGRAMME_ID_PATTERN

T = TypeVar("T")
Comment = Field(default="", max_length=5000)


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
    plan: dict | None = None
    last_report: dict | None = None
    counts: dict[str, int] = {}
    workflow_id: str


class PlanBody(Frozen):
    year: int = Field(ge=2000, le=2100)
    milestones: list[Milestone] = Field(min_length=1, max_length=200)
    indicators: list[IndicatorTarget] = Field(default=[], max_length=200)


class ReviewBody(Frozen):
    decision: Literal["approve", "return"]
    comment: str = Comment


class ReportBody(Frozen):
    period: str = Field(pattern=PERIOD_PATTERN)
    percent: float = Field(ge=0, le=100)
    narrative: str = Field(min_length=1, max_length=20000)
    indicator_values: list[IndicatorValue] = Field(default=[], max_length=200)
    evidence: list[Evidence] = Field(default=[], max_length=100)


class VerificationRequestBody(Frozen):
    note: str = Comment


class VerificationBody(Frozen):
    decision: Literal["pass", "fail"]
    findings: str = Comment
    score: float | None = Field(default=None, ge=0, le=100)


class CancelBody(Frozen):
    reason: str = Field(min_length=1, max_length=5000)


class CommandAccepted(Frozen):
    assignment_id: str
    stage: Stage
    year: int
    event_ids: list[str]
    replayed: bool = False  # True when an Idempotency-Key matched an earlier submission
