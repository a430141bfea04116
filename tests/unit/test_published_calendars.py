"""The published calendars an assignment workflow holds: a received one stays pending (out of the
calendar its deadlines are computed on) until the main loop applies it, across continue-as-new too,
and a new assignment starts with the years published before it."""

from __future__ import annotations

import datetime as dt

from contracts.base import Role
from contracts.catalog import Schedule
from contracts.commands import AssignmentSpec
from contracts.fold import AssignmentState
from contracts.working_calendar import PublishedCalendar
from workflows.calendar import WorkingCalendar, YearCalendar
from workflows.models import AssignmentInput, Carried
from workflows.published_calendars import PublishedCalendars

SPEC = AssignmentSpec(programme_id="p", assignment_id="p.t01.jw", task_no=1, task_title="t", unit_id="jw",
                      role=Role.LEAD, horizon_year=2031, schedule=Schedule(start_year=2030))  # fmt: skip
SUNDAY = dt.date(2030, 3, 3)
FIRST = PublishedCalendar(year=2030, holidays=[dt.date(2030, 1, 1)], workdays=[SUNDAY], source="国办发明电〔2029〕1号")
AGAIN = PublishedCalendar(year=2030, holidays=[dt.date(2030, 1, 1)], source="国办发明电〔2029〕2号")


def test_a_received_calendar_is_pending_until_applied() -> None:
    held = PublishedCalendars.of(AssignmentInput(spec=SPEC))
    held.receive(FIRST)
    assert held.years() == {} and held.pending == [FIRST]  # a year loaded meanwhile stays on the package
    years = {2030: YearCalendar(year=2030)}
    [taken] = held.take()
    calendar = held.install(taken, years)
    assert isinstance(calendar, WorkingCalendar) and calendar.is_working_day(SUNDAY)
    assert set(held.years()) == {2030} and held.pending == []


def test_pending_and_applied_calendars_cross_continue_as_new() -> None:
    held = PublishedCalendars.of(AssignmentInput(spec=SPEC))
    held.receive(FIRST)
    held.install(held.take()[0], {})
    held.receive(AGAIN)  # arrived as the run ended
    state = AssignmentState(assignment_id=SPEC.assignment_id, programme_id="p", task_no=1, unit_id="jw", year=2031)
    carried = Carried(state=state, next_seq=5, **held.carried())
    nxt = PublishedCalendars.of(AssignmentInput(spec=SPEC, carried=carried, published_calendars=[AGAIN]))
    assert nxt.applied == {2030: FIRST} and nxt.pending == [AGAIN]  # the next run still moves by it


def test_a_new_assignment_starts_on_the_calendars_in_its_input() -> None:
    held = PublishedCalendars.of(AssignmentInput(spec=SPEC, published_calendars=[FIRST]))
    assert held.pending == [] and held.years()[2030].make_up_workdays == [SUNDAY]
