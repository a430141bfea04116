"""The date a test on the dev server works in.

The dev server runs on this machine's clock and the workflows date everything in China's time
zone, so "today" for such a test is China's date by the wall clock. Tests under the time-skipping
server read its clock instead (tests/integration/conftest.py's `Kit.today`), and unit tests use
fixed dates.
"""

from __future__ import annotations

import datetime as dt

from workflows.calendar import shanghai_date


def china_today() -> dt.date:
    """Today in China by the wall clock, which is the dev server's clock."""
    return shanghai_date(dt.datetime.now(dt.UTC))


def current_period(day: dt.date) -> str:
    """The reporting period (`YYYY-Qn`) that `day` falls in."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
