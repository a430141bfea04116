"""Every deadline rule, in one place, driven by `DeadlineRules` (data a programme can change).

Pure functions from (calendar, rules, dates) to `Deadline`s and to the notices a deadline
earns: a reminder (催办) before it, escalations (三色督办) after it.

Keys are unique within an assignment and reused when the same obligation is reopened
(a returned plan reopens `annual_plan:<year>`, each failed verification reopens `rework:<year>`):

| key                  | kind             | opened by                | closed by                        |
|----------------------|------------------|--------------------------|----------------------------------|
| acceptance           | acceptance       | AssignmentCreated        | AssignmentAccepted               |
| annual_plan:Y        | annual_plan      | Accepted, YearStarted,   | AnnualPlanSubmitted              |
|                      |                  | AnnualPlanReturned       |                                  |
| report:Y-Qn (n=1..3) | quarterly_report | AnnualPlanApproved       | ProgressReported for Y-Qn,       |
|                      |                  |                          | VerificationRequested            |
| verification:Y       | verification     | AnnualPlanApproved       | VerificationRequested            |
| review:Y             | review           | VerificationRequested    | VerificationPassed / Failed      |
| rework:Y             | rework           | VerificationFailed       | VerificationRequested            |

There is no Q4 report deadline: the fourth quarter ends with the year, and the year-end
verification (requested by the unit, or automatically when the year is over) covers it.
A unit may still report progress for Q4; it just is not chased for it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from contracts.catalog import DeadlineRules
from contracts.events import Deadline
from workflows.calendar import WorkingCalendar

NoticeLevel = Literal["reminder", "blue", "yellow", "red"]
NOTICE_RANK: dict[str | None, int] = {None: 0, "reminder": 1, "blue": 2, "yellow": 3, "red": 4}
_PERIOD = re.compile(r"^(\d{4})-Q([1-4])$")


def period(year: int, quarter: int) -> str:
    return f"{year}-Q{quarter}"


def parse_period(value: str) -> tuple[int, int]:
    m = _PERIOD.match(value)
    if not m:
        raise ValueError(f"period {value!r} is not of the form 2026-Q1")
    return int(m[1]), int(m[2])


def quarter_start(year: int, quarter: int) -> dt.date:
    return dt.date(year, 3 * quarter - 2, 1)


def quarter_end(year: int, quarter: int) -> dt.date:
    return quarter_start(year + quarter // 4, quarter % 4 + 1) - dt.timedelta(days=1)


def year_end(year: int) -> dt.date:
    """The first day after `year`: from then on the year's work is verified automatically."""
    return dt.date(year + 1, 1, 1)


def acceptance(cal: WorkingCalendar, rules: DeadlineRules, created: dt.date, year: int) -> Deadline:
    due = cal.add_working_days(created, rules.acceptance_working_days)
    return Deadline(key="acceptance", kind="acceptance", due=due, year=year)


def first_annual_plan(cal: WorkingCalendar, rules: DeadlineRules, accepted: dt.date, year: int) -> Deadline:
    """First year: the plan is due a fixed number of working days after acceptance."""
    due = cal.add_working_days(accepted, rules.first_plan_working_days)
    return Deadline(key=f"annual_plan:{year}", kind="annual_plan", due=due, year=year)


def annual_plan(cal: WorkingCalendar, rules: DeadlineRules, year: int, started: dt.date) -> Deadline:
    """Later years: by the last working day of the plan month (January).

    When the year starts so late (the previous year's verification ran long) that fewer
    working days than the reminder lead time remain, the unit gets the first-year allowance
    from the day the year started instead: nobody is escalated for a plan they could not write.
    """
    due = cal.last_working_day_of_month(year, rules.plan_due_month)
    if cal.working_days_between(started, due) < rules.reminder_working_days_before:
        due = cal.add_working_days(started, rules.first_plan_working_days)
    return Deadline(key=f"annual_plan:{year}", kind="annual_plan", due=due, year=year)


def resubmitted_plan(cal: WorkingCalendar, rules: DeadlineRules, year: int, returned: dt.date) -> Deadline:
    """A returned plan is rework: it is due again within the rework allowance from the return."""
    due = cal.add_working_days(returned, rules.rework_working_days)
    return Deadline(key=f"annual_plan:{year}", kind="annual_plan", due=due, year=year)


def quarterly_report(cal: WorkingCalendar, rules: DeadlineRules, year: int, quarter: int) -> Deadline:
    due = cal.add_working_days(quarter_end(year, quarter), rules.report_working_days_after_quarter)
    p = period(year, quarter)
    return Deadline(key=f"report:{p}", kind="quarterly_report", due=due, year=year, period=p)


def quarterly_reports(cal: WorkingCalendar, rules: DeadlineRules, year: int, approved: dt.date) -> list[Deadline]:
    """Q1-Q3 reports of the plan year still ahead when the plan is approved.

    A quarter whose report date had already passed at approval is not chased: the plan's own
    lateness was escalated, and the unit could not report before its plan was approved.
    """
    all_quarters = (quarterly_report(cal, rules, year, q) for q in (1, 2, 3))
    return [d for d in all_quarters if d.due >= approved]


def verification_request(cal: WorkingCalendar, rules: DeadlineRules, year: int) -> Deadline:
    due = cal.last_working_day_of_month(year, rules.verification_due_month)
    return Deadline(key=f"verification:{year}", kind="verification", due=due, year=year)


def verifier_decision(cal: WorkingCalendar, rules: DeadlineRules, year: int, requested: dt.date) -> Deadline:
    due = cal.add_working_days(requested, rules.verifier_working_days)
    return Deadline(key=f"review:{year}", kind="review", due=due, year=year)


def rework(cal: WorkingCalendar, rules: DeadlineRules, year: int, failed: dt.date) -> Deadline:
    due = cal.add_working_days(failed, rules.rework_working_days)
    return Deadline(key=f"rework:{year}", kind="rework", due=due, year=year)


@dataclass(frozen=True)
class Notice:
    """A reminder or an escalation level that a deadline earns on a given day."""

    level: NoticeLevel
    on: dt.date
    working_days_overdue: int


def notice_schedule(cal: WorkingCalendar, rules: DeadlineRules, d: Deadline) -> list[Notice]:
    """Reminder N working days before; blue the first working day after; yellow and red later."""
    return [
        Notice("reminder", cal.add_working_days(d.due, -rules.reminder_working_days_before), 0),
        Notice("blue", cal.add_working_days(d.due, 1), 1),
        Notice("yellow", cal.add_working_days(d.due, rules.yellow_after_working_days), rules.yellow_after_working_days),
        Notice("red", cal.add_working_days(d.due, rules.red_after_working_days), rules.red_after_working_days),
    ]


def due_notice(
    cal: WorkingCalendar, rules: DeadlineRules, d: Deadline, sent: str | None, today: dt.date
) -> Notice | None:
    """The notice to issue today, if any: the highest level reached and not yet issued.

    Levels skipped while the worker was away are not issued late one by one (the highest one
    says it all), and a reminder is pointless once the deadline has passed.
    """
    reached = [n for n in notice_schedule(cal, rules, d) if n.on <= today and NOTICE_RANK[n.level] > NOTICE_RANK[sent]]
    if not reached:
        return None
    top = reached[-1]
    if top.level == "reminder" and today > d.due:
        return None
    return top


def next_notice_day(
    cal: WorkingCalendar, rules: DeadlineRules, d: Deadline, sent: str | None, today: dt.date
) -> dt.date | None:
    """The first day after `today` on which this deadline earns a notice not yet issued."""
    ahead = [n.on for n in notice_schedule(cal, rules, d) if n.on > today and NOTICE_RANK[n.level] > NOTICE_RANK[sent]]
    return min(ahead, default=None)
