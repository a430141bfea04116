"""The programme calendar's dates (contracts.programme_calendar), its file and its Temporal spec."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.figures import SHANGHAI
from contracts.programme_calendar import (
    CalendarSpan,
    ProgrammeCalendar,
    RecordedDate,
    between,
    calendar_view,
    due_at,
    occurrences,
)
from services.assignment.programme_dir import load_calendar
from services.assignment.schedules import spec_of
from services.assignment.source_files import DivisionError

SPAN = CalendarSpan(programme_id="cq-2022-79", start_year=2026, end_year=2030, evaluation_years=[2030])


def at(y: int, m: int, d: int, h: int = 9, minute: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, minute, tzinfo=SHANGHAI)


def test_the_default_dates_of_a_year() -> None:
    first = [(o.key, o.due_at) for o in occurrences(SPAN)[:6]]
    assert first == [
        ("bulletin:2026-Q1", at(2026, 4, 10)),
        ("bulletin:2026-Q2", at(2026, 7, 10)),
        ("bulletin:2026-Q3", at(2026, 10, 10)),
        ("bulletin:2026-Q4", at(2027, 1, 10)),
        ("snapshot:2026", at(2027, 1, 31)),
        ("bulletin:2027-Q1", at(2027, 4, 10)),
    ]
    last = [(o.key, o.due_at) for o in occurrences(SPAN)[-4:]]
    assert last == [
        ("bulletin:2030-Q3", at(2030, 10, 10)),
        ("evaluation:2030", at(2030, 11, 1)),
        ("bulletin:2030-Q4", at(2031, 1, 10)),
        ("snapshot:2030", at(2031, 1, 31)),
    ]
    assert len(occurrences(SPAN)) == 5 * 5 + 1


def test_a_run_records_the_latest_date_due_by_its_time() -> None:
    assert [o.key for o in due_at(SPAN, at(2027, 1, 10))] == ["bulletin:2026-Q4"]
    assert [o.key for o in due_at(SPAN, at(2027, 1, 10, 8, 59))] == ["bulletin:2026-Q3"]
    assert [o.key for o in due_at(SPAN, at(2027, 3, 1))] == ["snapshot:2026"]
    assert due_at(SPAN, at(2026, 4, 10, 8)) == []  # before the first date
    same_day = SPAN.model_copy(update={"calendar": ProgrammeCalendar(snapshot_on="01-10")})
    assert [o.key for o in due_at(same_day, at(2027, 1, 10))] == ["bulletin:2026-Q4", "snapshot:2026"]


def test_a_backfill_of_a_year_holds_its_dates() -> None:
    keys = [o.key for o in between(SPAN, at(2030, 1, 1, 0), at(2030, 12, 31, 23, 59))]
    assert keys == ["bulletin:2029-Q4", "snapshot:2029", "bulletin:2030-Q1", "bulletin:2030-Q2",
                    "bulletin:2030-Q3", "evaluation:2030"]  # fmt: skip


def test_the_calendar_file_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "calendar.yaml"
    good.write_text("bulletin_days_after_quarter: 15\nsnapshot_on: '02-28'\n", encoding="utf-8")
    cal = load_calendar(good)
    assert (cal.bulletin_days_after_quarter, cal.snapshot_on, cal.evaluation_opens_on) == (15, "02-28", "11-01")
    bad = tmp_path / "bad.yaml"
    bad.write_text("bulletin_days_after_quarter: 10\nsnapshot_on: '02-30'\n", encoding="utf-8")
    with pytest.raises(DivisionError) as err:
        load_calendar(bad)
    assert "snapshot_on" in str(err.value) and "bad.yaml" in str(err.value)
    with pytest.raises(ValidationError):
        ProgrammeCalendar(bulletin_days_after_quarter=0)
    with pytest.raises(ValidationError):
        ProgrammeCalendar(evaluation_opens_on="2030-11-01")


def test_the_schedule_fires_on_the_calendar_dates_only() -> None:
    spec = spec_of(SPAN)
    fired = sorted((c.month[0].start, c.day_of_month[0].start, c.hour[0].start) for c in spec.calendars)
    assert fired == [(1, 10, 9), (1, 31, 9), (4, 10, 9), (7, 10, 9), (10, 10, 9), (11, 1, 9)]
    [evaluation] = [c for c in spec.calendars if c.month[0].start == 11]
    assert [r.start for r in evaluation.year] == [2030]
    assert (spec.start_at, spec.time_zone_name) == (at(2026, 4, 10), "Asia/Shanghai")
    assert spec.end_at == at(2031, 1, 31) + dt.timedelta(minutes=1)


def test_an_evaluation_is_open_until_its_year_is_snapshotted() -> None:
    def date(key: str, due: dt.datetime) -> RecordedDate:
        kind, period = key.split(":")
        return RecordedDate(key=key, kind=kind, year=int(period[:4]), period=period, due_at=due,
                            recorded_at=due, event_id=f"programme:calendar-p#{due.month:06d}")  # fmt: skip

    dates = [date("bulletin:2030-Q3", at(2030, 10, 10)), date("evaluation:2030", at(2030, 11, 1))]
    view = calendar_view("p", dates)
    assert (view.latest_bulletin, view.latest_snapshot, view.evaluation_open) == ("2030-Q3", None, [2030])
    later = calendar_view(
        "p", [*dates, date("bulletin:2030-Q4", at(2031, 1, 10)), date("snapshot:2030", at(2031, 1, 31))]
    )
    assert (later.latest_bulletin, later.latest_snapshot, later.evaluation_open) == ("2030-Q4", 2030, [])
