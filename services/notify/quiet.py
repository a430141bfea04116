"""Quiet hours: a notice made at night or on a day off waits for the next working morning.

The window (`NOTIFY_QUIET_HOURS`, e.g. `22:00-07:30`) is Beijing time on working days; a day that
is not a working day is quiet all day. Working days come from the same calendar as the deadlines
(public holidays off, 调休 weekend days on): the years published with `policyflow calendar publish`
(services.notify.calendars), other years from the `holidays` package. So a Saturday waits for
Monday and a 调休 Sunday is a working day.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from workflows.calendar import SHANGHAI, WorkingCalendar

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class QuietHoursInvalid(ValueError):
    pass


@dataclass(frozen=True)
class QuietHours:
    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """`22:00-07:30` -> the window; empty -> None (quiet hours off)."""
        if not text.strip():
            return None
        m = _WINDOW.match(text)
        if m is None:
            raise QuietHoursInvalid(f"NOTIFY_QUIET_HOURS must look like 22:00-07:30, not {text!r}")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        try:
            start, end = dt.time(h1, m1), dt.time(h2, m2)
        except ValueError:
            raise QuietHoursInvalid(f"NOTIFY_QUIET_HOURS has a time that does not exist: {text!r}") from None
        if start == end:
            raise QuietHoursInvalid("NOTIFY_QUIET_HOURS starts and ends at the same time")
        return cls(start, end)

    def _quiet_on_working_day(self, t: dt.time) -> bool:
        if self.start > self.end:  # over midnight
            return t >= self.start or t < self.end
        return self.start <= t < self.end

    def release(self, moment: dt.datetime, calendar: WorkingCalendar) -> dt.datetime:
        """When a notice made at `moment` may go out: `moment` itself outside quiet hours, else the
        end of the window on the next working day of `calendar` that has not passed it (aware, UTC)."""
        local = moment.astimezone(SHANGHAI)
        day, t = local.date(), local.time()
        if calendar.is_working_day(day) and not self._quiet_on_working_day(t):
            return moment.astimezone(dt.UTC)
        # A working day's night before the end of the window belongs to that morning; a later time to the next.
        first = day if t < self.end else day + dt.timedelta(days=1)
        morning = calendar.add_working_days(first, 0)
        return dt.datetime.combine(morning, self.end, tzinfo=SHANGHAI).astimezone(dt.UTC)
