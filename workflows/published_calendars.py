"""The working calendars published to a running workflow (by signal, or in its input), kept in its state.

A published year replaces the `holidays` package's version of that year for this workflow. It is
`pending` from the signal until the main loop applies it: only then does it enter the calendar the
deadlines are computed on, so the loop always compares the calendar the open deadlines were made
with against the new one and moves them, however the signal interleaves with loading a year's
calendar (a local activity) or with continue-as-new. Both lists are carried across
continue-as-new, so a replay computes the same dates from its history alone.
"""

from __future__ import annotations

from typing import Any

from contracts.working_calendar import PublishedCalendar
from workflows.calendar import WorkingCalendar, YearCalendar
from workflows.models import AssignmentInput
from workflows.recompute import year_calendar


class PublishedCalendars:
    def __init__(self, applied: list[PublishedCalendar], pending: list[PublishedCalendar]) -> None:
        self.applied: dict[int, PublishedCalendar] = {c.year: c for c in applied}
        self.pending: list[PublishedCalendar] = list(pending)

    @classmethod
    def of(cls, input: AssignmentInput) -> PublishedCalendars:
        """A run's start: what the run before carried, or for a new assignment what it was started with."""
        c = input.carried
        return cls(c.published_calendars, c.pending_calendars) if c else cls(input.published_calendars, [])

    def receive(self, published: PublishedCalendar) -> None:
        """The signal's handler: kept for the main loop, which applies it (publishing a year again replaces it)."""
        self.pending.append(published)

    def take(self) -> list[PublishedCalendar]:
        taken, self.pending = self.pending, []
        return taken

    def install(self, published: PublishedCalendar, years: dict[int, YearCalendar]) -> WorkingCalendar:
        """Apply: put the published year into `years` (the workflow's loaded years); the calendar they make now."""
        self.applied[published.year] = published
        years[published.year] = year_calendar(published)
        return WorkingCalendar(years.values())

    def years(self) -> dict[int, YearCalendar]:
        """The applied years (never a pending one: its move is still to be computed)."""
        return {year: year_calendar(c) for year, c in self.applied.items()}

    def carried(self) -> dict[str, Any]:
        """The fields of `Carried` that hand them to the next run."""
        return {
            "published_calendars": [self.applied[y] for y in sorted(self.applied)],
            "pending_calendars": list(self.pending),
        }
