"""Working days on China's calendar: holidays, 调休 make-up working days, month ends."""

from __future__ import annotations

import datetime as dt

import pytest

from workflows.calendar import (
    WorkingCalendar,
    YearCalendar,
    add_working_days,
    china_calendar,
    china_year,
    is_working_day,
    last_working_day_of_month,
    shanghai_date,
    start_of_day,
    working_days_between,
)

D = dt.date


def test_national_day_2026_is_off_and_the_next_thursday_works() -> None:
    assert [is_working_day(D(2026, 10, d)) for d in range(1, 9)] == [False] * 7 + [True]


@pytest.mark.parametrize(
    "day",
    [D(2026, 1, 4), D(2026, 2, 14), D(2026, 2, 28), D(2026, 5, 9), D(2026, 9, 20), D(2026, 10, 10)],
)
def test_tiaoxiu_weekend_days_are_working_days(day: dt.date) -> None:
    assert day.weekday() >= 5
    assert is_working_day(day)


def test_spring_festival_2026_and_its_make_up_saturdays() -> None:
    # Fri 13 Feb works, Sat 14 Feb is a make-up working day, 15-23 Feb are off.
    assert add_working_days(D(2026, 2, 13), 1) == D(2026, 2, 14)
    assert add_working_days(D(2026, 2, 14), 1) == D(2026, 2, 24)
    assert working_days_between(D(2026, 2, 14), D(2026, 2, 24)) == 1


def test_ten_working_days_after_q3_cross_national_day() -> None:
    # 8, 9, 10 (Sat, 调休), 12-16, 19, 20 October.
    assert add_working_days(D(2026, 9, 30), 1) == D(2026, 10, 8)
    assert add_working_days(D(2026, 9, 30), 3) == D(2026, 10, 10)
    assert add_working_days(D(2026, 9, 30), 10) == D(2026, 10, 20)


def test_backwards_and_zero() -> None:
    assert add_working_days(D(2026, 10, 8), -1) == D(2026, 9, 30)
    assert add_working_days(D(2026, 10, 20), -3) == D(2026, 10, 15)
    assert add_working_days(D(2026, 10, 3), 0) == D(2026, 10, 8)  # a holiday rolls forward
    assert add_working_days(D(2026, 10, 8), 0) == D(2026, 10, 8)


def test_last_working_day_of_month() -> None:
    assert last_working_day_of_month(2026, 1) == D(2026, 1, 30)  # 31st is a Saturday
    assert last_working_day_of_month(2026, 2) == D(2026, 2, 28)  # a Saturday, but 调休
    assert last_working_day_of_month(2026, 12) == D(2026, 12, 31)
    assert last_working_day_of_month(2027, 1) == D(2027, 1, 29)


def test_working_days_between_is_the_inverse_of_adding() -> None:
    start = D(2026, 9, 25)
    for n in range(1, 40):
        assert working_days_between(start, add_working_days(start, n)) == n
    assert working_days_between(D(2026, 10, 20), D(2026, 9, 30)) == -10
    assert working_days_between(D(2026, 10, 1), D(2026, 10, 7)) == 0


def test_a_calendar_without_data_counts_monday_to_friday() -> None:
    bare = WorkingCalendar()
    assert bare.is_working_day(D(2026, 10, 1))  # no holiday data: just a Thursday
    assert bare.add_working_days(D(2026, 10, 2), 1) == D(2026, 10, 5)


def test_calendar_from_data_matches_the_library() -> None:
    cal = china_calendar([2026, 2027])
    assert cal.years == {2026, 2027}
    day = D(2026, 1, 1)
    while day < D(2028, 1, 1):
        assert cal.is_working_day(day) == is_working_day(day), day
        day += dt.timedelta(days=1)


def test_year_data_is_cached_and_serialisable() -> None:
    assert china_year(2026) is china_year(2026)
    again = YearCalendar.model_validate_json(china_year(2026).model_dump_json())
    assert again == china_year(2026)
    assert D(2026, 10, 10) in again.make_up_workdays and D(2026, 10, 1) in again.days_off


def test_dates_are_taken_in_shanghai() -> None:
    late_utc = dt.datetime(2026, 9, 30, 16, 30, tzinfo=dt.UTC)  # 00:30 on 1 October in China
    assert shanghai_date(late_utc) == D(2026, 10, 1)
    assert start_of_day(D(2026, 10, 1)) == dt.datetime(2026, 9, 30, 16, 0, tzinfo=dt.UTC)
