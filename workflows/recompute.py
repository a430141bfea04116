"""Deadlines recomputed on a newly published working calendar (pure).

A deadline is recomputed by its rule where the rule names it outright (a quarter's report, the
verification request, a later year's plan: counted from fixed dates); one counted from the day
something happened (acceptance, a plan after acceptance or after its return, a review, rework)
keeps its count of working days from that day, found again on the calendar it was made with.
A date set by an approved extension is a supervisor's decision and stays as it is.
"""

from __future__ import annotations

from contracts.catalog import DeadlineRules
from contracts.events import Deadline, DeadlinesRecomputed, MovedDeadline
from contracts.fold import AssignmentState
from contracts.working_calendar import PublishedCalendar
from workflows import deadlines as rules
from workflows.calendar import WorkingCalendar, YearCalendar


def year_calendar(published: PublishedCalendar) -> YearCalendar:
    return YearCalendar(
        year=published.year, days_off=sorted(published.holidays), make_up_workdays=sorted(published.workdays)
    )


def _counted(d: Deadline, old: WorkingCalendar, new: WorkingCalendar, working_days: int) -> Deadline:
    start = old.add_working_days(d.due, -working_days)
    return d.model_copy(update={"due": new.add_working_days(start, working_days)})


def recomputed(d: Deadline, old: WorkingCalendar, new: WorkingCalendar, r: DeadlineRules) -> Deadline:
    match d.kind:
        case "quarterly_report" if d.period:
            year, quarter = rules.parse_period(d.period)
            return rules.quarterly_report(new, r, year, quarter)
        case "verification":
            return rules.verification_request(new, r, d.year)
        case "annual_plan" if d.due == old.last_working_day_of_month(d.year, r.plan_due_month):
            return d.model_copy(update={"due": new.last_working_day_of_month(d.year, r.plan_due_month)})
        case "annual_plan":
            return _counted(d, old, new, r.first_plan_working_days)
        case "acceptance":
            return _counted(d, old, new, r.acceptance_working_days)
        case "review":
            return _counted(d, old, new, r.verifier_working_days)
        case _:
            return _counted(d, old, new, r.rework_working_days)


def deadlines_recomputed(
    s: AssignmentState, old: WorkingCalendar, new: WorkingCalendar, r: DeadlineRules, published: PublishedCalendar
) -> DeadlinesRecomputed | None:
    """The fact recording which open deadlines the published calendar moves, or None if it moves none."""
    extended = {(x.deadline_key, x.approved_due) for x in s.extensions if x.status == "approved"}
    moved: list[Deadline] = []
    for d in sorted(s.deadlines.values(), key=lambda d: (d.due, d.key)):
        if (d.key, d.due) in extended:
            continue
        again = recomputed(d, old, new, r)
        if again.due != d.due:
            moved.append(again)
    if not moved:
        return None
    words = [MovedDeadline(key=m.key, old_due=s.deadlines[m.key].due, new_due=m.due) for m in moved]
    return DeadlinesRecomputed(year=published.year, source=published.source, moved=words, opens=moved)
