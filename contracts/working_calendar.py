"""A year's official working calendar (放假安排) as the operator publishes it: dates off, make-up
working days (调休) and the State Council notice it comes from. Pure: the CLI reads the file, the
API takes the body, the workflows receive it by signal."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from contracts.base import Actor, Frozen

SIGNAL_CALENDAR_PUBLISHED = "calendar_published"  # to each running assignment
CALENDAR_WORKFLOW_NAME = "WorkingCalendarWorkflow"  # one per year: records each publication, tells the assignments
SIGNAL_PUBLISH_CALENDAR = "publish"
QUERY_CALENDAR = "calendar"


def calendar_workflow_id(year: int) -> str:
    return f"calendar-{year}"


def calendar_stream(year: int) -> str:
    """The programme id its events carry: their stream key is `programme:calendar-YEAR`."""
    return f"calendar-{year}"


class PublishedCalendar(Frozen):
    """`holidays`: the days off (weekends inside a holiday may be listed too); `workdays`: weekend days worked."""

    year: int = Field(ge=2000, le=2100)
    holidays: list[dt.date] = Field(min_length=1, max_length=366)
    workdays: list[dt.date] = Field(default=[], max_length=366)
    source: str = Field(min_length=1, max_length=200)  # e.g. 国办发明电〔2026〕7号

    @model_validator(mode="after")
    def _dates_fit(self) -> PublishedCalendar:
        for name, days in (("holidays", self.holidays), ("workdays", self.workdays)):
            for i, day in enumerate(days):
                if day.year != self.year:
                    raise ValueError(f"{name}[{i}]: {day.isoformat()} is not in {self.year}")
            if len(set(days)) != len(days):
                twice = sorted(d for d in set(days) if days.count(d) > 1)[0]
                raise ValueError(f"{name}: {twice.isoformat()} is listed twice")
        for i, day in enumerate(self.workdays):
            if day.weekday() < 5:
                raise ValueError(f"workdays[{i}]: {day.isoformat()} is a weekday, a working day anyway")
            if day in self.holidays:
                raise ValueError(f"workdays[{i}]: {day.isoformat()} is also listed as a holiday")
        return self


class CalendarPublication(Frozen):
    """The signal to a year's calendar workflow: publish this (again)."""

    calendar: PublishedCalendar
    actor: Actor


class CalendarStatus(Frozen):
    """GET /v1/calendars/{year}: the calendar in force for the year and how far its publication got."""

    year: int
    published: bool  # False: the `holidays` package's calendar is used, provisionally
    revision: int = 0  # how many times the year was published
    calendar: PublishedCalendar | None = None
    state: Literal["none", "queued", "signalling", "done"] = "none"
    signalled: int = 0  # running assignments told of the latest publication so far
    failed: int = 0
    message: str = ""
