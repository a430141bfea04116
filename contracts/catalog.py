"""The programme as read from the policy text, the unit registry and the division of work."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import Field

from contracts.base import Frozen, Role
from contracts.ids import UNIT_ID_PATTERN


class NamedResponsibility(Frozen):
    """A responsibility as the document names it: a unit's name as written and its role."""

    unit: str
    role: Role


class Task(Frozen):
    no: int = Field(ge=1)
    title: str
    text: str
    responsibilities: list[NamedResponsibility] = []


class TaskGroup(Frozen):
    no: int = Field(ge=1)
    title: str
    tasks: list[Task]


class Goal(Frozen):
    year: int
    text: str


class Programme(Frozen):
    """A parsed implementation plan (实施意见 / 方案)."""

    document_no: str
    title: str
    issued_on: dt.date | None = None
    goals: list[Goal] = []
    groups: list[TaskGroup]
    safeguards: list[str] = []

    def tasks(self) -> list[Task]:
        return [t for g in self.groups for t in g.tasks]

    def group_of(self, task_no: int) -> TaskGroup | None:
        return next((g for g in self.groups if any(t.no == task_no for t in g.tasks)), None)


class UnitKind(StrEnum):
    DEPARTMENT = "department"  # 市级部门
    DISTRICT = "district"  # 区县 / 新区 / 开发区


class Unit(Frozen):
    unit_id: str = Field(pattern=UNIT_ID_PATTERN)
    name: str
    kind: UnitKind
    aliases: list[str] = []


class Responsibility(Frozen):
    """One line of the division of work: task x unit x role, to a horizon year."""

    task_no: int = Field(ge=1)
    unit_id: str
    role: Role
    horizon_year: int = Field(ge=2000, le=2100)


class DeadlineRules(Frozen):
    """Deadline rules as data, in working days (Chinese calendar), so a programme can change them."""

    acceptance_working_days: int = 10
    first_plan_working_days: int = 20  # first year: after acceptance
    plan_due_month: int = 1  # later years: last working day of this month
    report_working_days_after_quarter: int = 10
    verification_due_month: int = 12  # the year's work is declared done by the month's last working day
    verifier_working_days: int = 20  # verifier decides within this many working days of a request
    rework_working_days: int = 20
    reminder_working_days_before: int = 3
    yellow_after_working_days: int = 10
    red_after_working_days: int = 20


class Schedule(Frozen):
    """Programme-level timing: first year, and which years are five-year evaluation years."""

    start_year: int = Field(ge=2000, le=2100)
    evaluation_years: list[int] = []
    rules: DeadlineRules = DeadlineRules()


class Division(Frozen):
    """The division of work (任务分工) for one programme."""

    example: bool = False
    note: str = ""
    responsibilities: list[Responsibility]
