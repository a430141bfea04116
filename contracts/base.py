"""Shared model base and small value types."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable, strict-about-unknown-fields model used for every contract.

    Numbers are finite: NaN and ±Infinity (which JSON parsers accept as `NaN`, `Infinity`, `1e309`)
    are refused where they come in, naming the field; serialised, they would become `null`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Role(StrEnum):
    """A unit's role in a responsibility (任务分工)."""

    LEAD = "lead"  # 牵头
    COOPERATING = "cooperating"  # 配合
    RESPONSIBLE = "responsible"  # 负责 / 区县 local delivery


class UserRole(StrEnum):
    """Who a token says the caller is."""

    DEPARTMENT = "department"
    SUPERVISOR = "supervisor"
    VERIFIER = "verifier"
    AUDITOR = "auditor"
    ADMIN = "admin"  # operators: users, programme import and revision, calendar publication
    SYSTEM = "system"


class Stage(StrEnum):
    ASSIGNED = "assigned"
    PLANNING = "planning"
    PLAN_SUBMITTED = "plan_submitted"
    IMPLEMENTING = "implementing"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class OverdueLevel(StrEnum):
    """三色督办: none, then blue, yellow, red as a deadline slips further."""

    NONE = "none"
    BLUE = "blue"
    YELLOW = "yellow"
    RED = "red"


OVERDUE_RANK = {OverdueLevel.NONE: 0, OverdueLevel.BLUE: 1, OverdueLevel.YELLOW: 2, OverdueLevel.RED: 3}


class Actor(Frozen):
    """Who caused a fact: the token subject, role and unit (if any)."""

    sub: str
    role: UserRole
    unit_id: str | None = None


SYSTEM_ACTOR = Actor(sub="policyflow", role=UserRole.SYSTEM)
