"""Working-day arithmetic on China's official calendar (public holidays and 调休 make-up days).

Two layers:

* `YearCalendar` is one year's data: weekdays that are off, weekend days that are worked.
  `china_year(year)` reads it from the maintained `holidays` package (cached per year).
* `WorkingCalendar` does the arithmetic over whatever years it was given. Years it was not
  given count Monday-Friday as working days, so it never does I/O and never raises.

The workflow does not call `holidays` itself: the package is re-released whenever the State
Council publishes a new year's schedule, and a workflow replayed on a newer release would
compute different dates from the ones it recorded. It loads `YearCalendar`s through a local
activity (recorded in history) and builds a `WorkingCalendar` from them.

Dates are calendar dates in Asia/Shanghai (UTC+8, no daylight saving).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def shanghai_date(moment: dt.datetime) -> dt.date:
    """The calendar date in China at an aware moment."""
    return moment.astimezone(SHANGHAI).date()


def start_of_day(day: dt.date) -> dt.datetime:
    """Midnight at the start of `day` in China, as an aware datetime."""
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=SHANGHAI)


class YearCalendar(BaseModel):
    """One year's exceptions to Monday-Friday: weekdays off and weekend days worked (调休)."""

    model_config = ConfigDict(frozen=True)

    year: int
    days_off: list[dt.date] = []
    make_up_workdays: list[dt.date] = []


class WorkingCalendar:
    """Working-day arithmetic over a fixed set of `YearCalendar`s."""

    def __init__(self, years: Iterable[YearCalendar] = ()) -> None:
        self._years = {y.year: y for y in years}
        self._off = {d for y in self._years.values() for d in y.days_off}
        self._on = {d for y in self._years.values() for d in y.make_up_workdays}

    @property
    def years(self) -> set[int]:
        return set(self._years)

    def is_working_day(self, day: dt.date) -> bool:
        if day in self._on:
            return True
        return day.weekday() < 5 and day not in self._off

    def add_working_days(self, day: dt.date, n: int) -> dt.date:
        """The n-th working day after `day` (before it if n < 0); n == 0: `day` or the next working day."""
        step = dt.timedelta(days=1 if n >= 0 else -1)
        current = day
        if n == 0:
            while not self.is_working_day(current):
                current += step
            return current
        for _ in range(abs(n)):
            current += step
            while not self.is_working_day(current):
                current += step
        return current

    def working_days_between(self, a: dt.date, b: dt.date) -> int:
        """Working days after `a` up to and including `b`; negative if b < a.

        The inverse of `add_working_days`: add_working_days(a, n) == b gives n for n > 0.
        """
        if b < a:
            return -self.working_days_between(b, a)
        count, current = 0, a
        while current < b:
            current += dt.timedelta(days=1)
            count += self.is_working_day(current)
        return count

    def last_working_day_of_month(self, year: int, month: int) -> dt.date:
        first_of_next = dt.date(year + month // 12, month % 12 + 1, 1)
        return self.add_working_days(first_of_next, -1)


@lru_cache(maxsize=64)
def china_year(year: int) -> YearCalendar:
    """China's calendar for `year` from the `holidays` package (cached: built once per year)."""
    import holidays  # here, not at import time: the workflow sandbox never needs it

    cn = holidays.country_holidays("CN", years=year)
    days_off = sorted(d for d in cn if d.year == year and d.weekday() < 5)
    make_up = sorted(d for d in cn.weekend_workdays if d.year == year)
    return YearCalendar(year=year, days_off=days_off, make_up_workdays=make_up)


def china_calendar(years: Iterable[int]) -> WorkingCalendar:
    return WorkingCalendar(china_year(y) for y in sorted(set(years)))


class ChinaCalendar(WorkingCalendar):
    """Outside workflows: the years given (published ones), and any other year from the `holidays`
    package the first time it is touched."""

    def is_working_day(self, day: dt.date) -> bool:
        if day.year not in self._years:
            y = china_year(day.year)
            self._years[day.year] = y
            self._off.update(y.days_off)
            self._on.update(y.make_up_workdays)
        return super().is_working_day(day)


@lru_cache(maxsize=1)
def _default() -> ChinaCalendar:
    return ChinaCalendar()


def is_working_day(day: dt.date) -> bool:
    return _default().is_working_day(day)


def add_working_days(day: dt.date, n: int) -> dt.date:
    return _default().add_working_days(day, n)


def last_working_day_of_month(year: int, month: int) -> dt.date:
    return _default().last_working_day_of_month(year, month)


def working_days_between(a: dt.date, b: dt.date) -> int:
    return _default().working_days_between(a, b)
