"""The working calendars published to a running workflow (by signal), kept in its state.

A published year replaces the `holidays` package's version of that year for this workflow from
the moment the signal arrives, and is carried across continue-as-new, so a replay computes the
same dates from its history alone.
"""

from __future__ import annotations

from contracts.working_calendar import PublishedCalendar
from workflows.calendar import WorkingCalendar, YearCalendar
from workflows.recompute import year_calendar


class PublishedCalendars:
    def __init__(self, carried: list[PublishedCalendar]) -> None:
        self.by_year: dict[int, PublishedCalendar] = {c.year: c for c in carried}
        self.pending: list[PublishedCalendar] = []

    def receive(self, published: PublishedCalendar) -> None:
        """The signal's handler: publishing the same year again replaces it."""
        self.by_year[published.year] = published
        self.pending.append(published)

    def take(self) -> list[PublishedCalendar]:
        taken, self.pending = self.pending, []
        return taken

    def install(self, published: PublishedCalendar, years: dict[int, YearCalendar]) -> WorkingCalendar:
        """Put the published year into `years` (the workflow's loaded years); the calendar they make now."""
        years[published.year] = year_calendar(published)
        return WorkingCalendar(years.values())

    def years(self) -> dict[int, YearCalendar]:
        return {year: year_calendar(c) for year, c in self.by_year.items()}

    def carried(self) -> list[PublishedCalendar]:
        return [self.by_year[y] for y in sorted(self.by_year)]
