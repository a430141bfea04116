"""Deadline rules as data: due dates, reminders and escalation days, on China's calendar."""

from __future__ import annotations

import datetime as dt

from contracts.catalog import DeadlineRules
from contracts.events import Deadline
from workflows import deadlines as r
from workflows.calendar import china_calendar

D = dt.date
CAL = china_calendar([2025, 2026, 2027, 2028])
RULES = DeadlineRules()


def test_acceptance_is_ten_working_days_across_national_day() -> None:
    d = r.acceptance(CAL, RULES, D(2026, 9, 28), 2026)
    # 29, 30 Sep; 8, 9, 10 (调休 Saturday), 12, 13, 14, 15, 16 Oct
    assert (d.key, d.kind, d.due) == ("acceptance", "acceptance", D(2026, 10, 16))


def test_first_plan_is_twenty_working_days_after_acceptance() -> None:
    d = r.first_annual_plan(CAL, RULES, D(2026, 12, 1), 2026)
    assert (d.key, d.due) == ("annual_plan:2026", D(2026, 12, 29))


def test_later_plans_are_due_on_the_last_working_day_of_january() -> None:
    assert r.annual_plan(CAL, RULES, 2027, D(2027, 1, 4)).due == D(2027, 1, 29)
    # Started too late to write it by then: twenty working days from the start instead.
    late = r.annual_plan(CAL, RULES, 2027, D(2027, 1, 27))
    assert late.due == CAL.add_working_days(D(2027, 1, 27), 20) == D(2027, 3, 2)


def test_quarterly_reports_q1_to_q3_only() -> None:
    reports = r.quarterly_reports(CAL, RULES, 2026, D(2026, 1, 5))
    assert [(d.key, d.period, d.due) for d in reports] == [
        ("report:2026-Q1", "2026-Q1", D(2026, 4, 15)),  # 6 April (Qingming observed) is off
        ("report:2026-Q2", "2026-Q2", D(2026, 7, 14)),
        ("report:2026-Q3", "2026-Q3", D(2026, 10, 20)),  # across National Day
    ]
    # Approved in May: the Q1 report date had passed, it is not chased.
    assert [d.period for d in r.quarterly_reports(CAL, RULES, 2026, D(2026, 5, 1))] == ["2026-Q2", "2026-Q3"]


def test_verification_and_verifier_and_rework() -> None:
    assert r.verification_request(CAL, RULES, 2026).due == D(2026, 12, 31)
    assert r.verifier_decision(CAL, RULES, 2026, D(2027, 1, 1)).due == D(2027, 1, 29)
    redo = r.rework(CAL, RULES, 2026, D(2027, 1, 15))
    assert (redo.key, redo.kind, redo.due) == ("rework:2026", "rework", CAL.add_working_days(D(2027, 1, 15), 20))
    assert r.resubmitted_plan(CAL, RULES, 2027, D(2027, 1, 10)).key == "annual_plan:2027"


def test_rules_are_data() -> None:
    quick = DeadlineRules(report_working_days_after_quarter=5, acceptance_working_days=1)
    assert r.quarterly_report(CAL, quick, 2026, 3).due == D(2026, 10, 13)
    assert r.acceptance(CAL, quick, D(2026, 9, 30), 2026).due == D(2026, 10, 8)


def test_notice_schedule_of_the_q3_report() -> None:
    q3 = r.quarterly_report(CAL, RULES, 2026, 3)
    assert [(n.level, n.on, n.working_days_overdue) for n in r.notice_schedule(CAL, RULES, q3)] == [
        ("reminder", D(2026, 10, 15), 0),
        ("blue", D(2026, 10, 21), 1),
        ("yellow", D(2026, 11, 3), 10),
        ("red", D(2026, 11, 17), 20),
    ]


def test_reminder_before_a_deadline_just_after_the_holiday_reaches_back_over_it() -> None:
    d = Deadline(key="x", kind="review", due=D(2026, 10, 9), year=2026)
    assert r.notice_schedule(CAL, RULES, d)[0].on == D(2026, 9, 29)


def test_due_notice_issues_each_level_once_and_the_highest_when_late() -> None:
    q3 = r.quarterly_report(CAL, RULES, 2026, 3)
    assert r.due_notice(CAL, RULES, q3, None, D(2026, 10, 14)) is None
    assert r.due_notice(CAL, RULES, q3, None, D(2026, 10, 15)).level == "reminder"  # type: ignore[union-attr]
    assert r.due_notice(CAL, RULES, q3, "reminder", D(2026, 10, 20)) is None
    assert r.due_notice(CAL, RULES, q3, "reminder", D(2026, 10, 21)).level == "blue"  # type: ignore[union-attr]
    assert r.due_notice(CAL, RULES, q3, "blue", D(2026, 10, 30)) is None
    # A worker that was away: the highest level reached, no stale reminder.
    assert r.due_notice(CAL, RULES, q3, None, D(2026, 11, 20)).level == "red"  # type: ignore[union-attr]
    assert r.due_notice(CAL, RULES, q3, None, D(2026, 10, 20)).level == "reminder"  # type: ignore[union-attr]
    assert r.due_notice(CAL, RULES, q3, "red", D(2027, 6, 1)) is None


def test_next_notice_day() -> None:
    q3 = r.quarterly_report(CAL, RULES, 2026, 3)
    assert r.next_notice_day(CAL, RULES, q3, None, D(2026, 9, 1)) == D(2026, 10, 15)
    assert r.next_notice_day(CAL, RULES, q3, "reminder", D(2026, 10, 15)) == D(2026, 10, 21)
    assert r.next_notice_day(CAL, RULES, q3, "blue", D(2026, 10, 21)) == D(2026, 11, 3)
    assert r.next_notice_day(CAL, RULES, q3, "red", D(2026, 11, 17)) is None


def test_periods_and_quarters() -> None:
    assert r.parse_period("2026-Q3") == (2026, 3)
    assert r.quarter_start(2026, 3) == D(2026, 7, 1) and r.quarter_end(2026, 3) == D(2026, 9, 30)
    assert r.quarter_end(2026, 4) == D(2026, 12, 31)
    assert r.year_end(2026) == D(2027, 1, 1)
