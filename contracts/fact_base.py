"""The base of every fact and the deadlines facts open and close (re-exported by contracts.events)."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from contracts.base import Frozen

DeadlineKind = Literal["acceptance", "annual_plan", "quarterly_report", "verification", "review", "rework"]


class Deadline(Frozen):
    """An open deadline. `key` is unique within an assignment, e.g. `annual_plan:2027`."""

    key: str
    kind: DeadlineKind
    due: dt.date
    year: int
    period: str | None = None


class Fact(Frozen):
    """Base of every fact. Subclasses set `TYPE` and `SCHEMA_VERSION`."""

    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1
    opens: list[Deadline] = []
    closes: list[str] = []
