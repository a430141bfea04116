"""The programme's own calendar (一年一体检、五年一评估): when each quarter's bulletin (督查通报) is
issued, when the year's 考核 scores are snapshotted and when a five-year evaluation opens.

Pure: the dates are a function of `ProgrammeCalendar` (calendar.yaml in a programme directory, or
its documented default), the programme's years and its evaluation years (schedule.yaml). The
Temporal Schedule (`programme-<id>-calendar`) fires at each date; a run records what fell due at
its scheduled time as facts (contracts.calendar_facts), each once.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import Field, field_validator

from contracts.base import Frozen
from contracts.figures import SHANGHAI

CALENDAR_TICK_WORKFLOW_NAME = "ProgrammeCalendarRun"  # the schedule's action: one short run per date
CALENDAR_RECORD_WORKFLOW_NAME = "ProgrammeCalendarRecord"  # one per programme: records each occurrence once
SIGNAL_RECORD_OCCURRENCES = "record"
QUERY_RECORDED = "recorded"
CALENDAR_FILE = "calendar.yaml"
_MONTH_DAY = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")

OccurrenceKind = Literal["bulletin", "snapshot", "evaluation"]


def calendar_schedule_id(programme_id: str) -> str:
    """The programme's Temporal Schedule, as the Temporal UI lists it."""
    return f"programme-{programme_id}-calendar"


def calendar_record_workflow_id(programme_id: str) -> str:
    return f"programme-{programme_id}-calendar-record"


def calendar_stream(programme_id: str) -> str:
    """The programme id the calendar's events carry in their envelope (stream key
    `programme:calendar-<id>`, a sequence of its own beside the programme's import and revisions);
    each fact names the programme itself in `programme_id`."""
    return f"calendar-{programme_id}"


def _month_day(value: str) -> str:
    if not _MONTH_DAY.match(value):
        raise ValueError(f"{value!r} is not a month and day written MM-DD, e.g. 01-31")
    dt.date.fromisoformat(f"2001-{value}")  # 02-30 and the like: no such day in a common year
    return value


class ProgrammeCalendar(Frozen):
    """calendar.yaml. Default (an EXAMPLE, not an official rule): each quarter's bulletin 10 days
    after the quarter ends (01-10, 04-10, 07-10, 10-10), the year's scores snapshotted on 01-31 of
    the next year, a five-year evaluation opened on 11-01 of each evaluation year; at 09:00 China time."""

    bulletin_days_after_quarter: int = Field(default=10, ge=1, le=60)
    snapshot_on: str = "01-31"  # MM-DD of the year after the one scored
    evaluation_opens_on: str = "11-01"  # MM-DD of the evaluation year itself
    at_hour: int = Field(default=9, ge=0, le=23)  # China time

    @field_validator("snapshot_on", "evaluation_opens_on")
    @classmethod
    def _is_month_day(cls, value: str) -> str:
        return _month_day(value)


class Occurrence(Frozen):
    """One date of the calendar and what falls due on it."""

    kind: OccurrenceKind
    key: str  # bulletin:2026-Q4, snapshot:2026, evaluation:2030: what is recorded at most once
    year: int
    period: str  # 2026-Q4 for a bulletin; the year as text otherwise
    due_at: dt.datetime  # China time


class CalendarSpan(Frozen):
    """What a schedule run needs: the programme, its calendar and its years."""

    programme_id: str
    calendar: ProgrammeCalendar = ProgrammeCalendar()
    start_year: int = Field(ge=2000, le=2100)
    end_year: int = Field(ge=2000, le=2100)  # the last year supervised (the horizon)
    evaluation_years: list[int] = []


class RecordOccurrences(Frozen):
    """The signal to a programme's record workflow: these fell due; record those not recorded yet."""

    programme_id: str
    occurrences: list[Occurrence]


def _at(day: dt.date, cal: ProgrammeCalendar) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(cal.at_hour), tzinfo=SHANGHAI)


def quarter_end(year: int, quarter: int) -> dt.date:
    first_of_next = dt.date(year + quarter // 4, quarter % 4 * 3 + 1, 1)
    return first_of_next - dt.timedelta(days=1)


def bulletin_date(cal: ProgrammeCalendar, year: int, quarter: int) -> dt.date:
    return quarter_end(year, quarter) + dt.timedelta(days=cal.bulletin_days_after_quarter)


def occurrences(span: CalendarSpan) -> list[Occurrence]:
    """Every date of the programme's calendar, in time order (same time: bulletin, snapshot, evaluation)."""
    cal, out = span.calendar, []
    for year in range(span.start_year, span.end_year + 1):
        for q in range(1, 5):
            period = f"{year}-Q{q}"
            due = _at(bulletin_date(cal, year, q), cal)
            out.append(Occurrence(kind="bulletin", key=f"bulletin:{period}", year=year, period=period, due_at=due))
        snap = _at(dt.date.fromisoformat(f"{year + 1}-{cal.snapshot_on}"), cal)
        out.append(Occurrence(kind="snapshot", key=f"snapshot:{year}", year=year, period=str(year), due_at=snap))
        if year in span.evaluation_years:
            opens = _at(dt.date.fromisoformat(f"{year}-{cal.evaluation_opens_on}"), cal)
            out.append(
                Occurrence(kind="evaluation", key=f"evaluation:{year}", year=year, period=str(year), due_at=opens)
            )
    order = {"bulletin": 0, "snapshot": 1, "evaluation": 2}
    return sorted(out, key=lambda o: (o.due_at, order[o.kind], o.key))


def due_at(span: CalendarSpan, when: dt.datetime) -> list[Occurrence]:
    """What a run scheduled at `when` records: the occurrences of the latest calendar time on or
    before it. A run on a calendar date records that date's; a run triggered by hand between dates
    records the last ones due (already recorded, they are not recorded again)."""
    past = [o for o in occurrences(span) if o.due_at <= when]
    if not past:
        return []
    latest = past[-1].due_at
    return [o for o in past if o.due_at == latest]


def between(span: CalendarSpan, start: dt.datetime, end: dt.datetime) -> list[Occurrence]:
    """The occurrences a backfill of [start, end] records."""
    return [o for o in occurrences(span) if start <= o.due_at <= end]


class ScheduleState(Frozen):
    """GET /v1/programmes/{id}/schedule: the programme's Temporal Schedule in plain words."""

    programme_id: str
    schedule_id: str
    exists: bool
    paused: bool = False
    note: str = ""  # why it was paused (or unpaused), as the person said
    calendar: ProgrammeCalendar | None = None
    start_year: int | None = None
    end_year: int | None = None
    evaluation_years: list[int] = []
    next_runs: list[dt.datetime] = []  # the next dates it fires (China time)
    next_due: list[Occurrence] = []  # what falls due at those dates
    recent_runs: list[dt.datetime] = []  # when it last ran (scheduled times)
    recorded: list[str] = []  # the occurrences recorded so far (keys), oldest first
    message: str = ""


class ScheduleAction(Frozen):
    """POST /v1/programmes/{id}/schedule/{pause|unpause}: why (kept in the schedule's note)."""

    reason: str = Field(default="", max_length=500)


class BackfillRequest(Frozen):
    """POST /v1/programmes/{id}/schedule/backfill: run the schedule for every date in [from, to]."""

    from_date: dt.date
    to_date: dt.date


class BackfillAnswer(Frozen):
    programme_id: str
    from_date: dt.date
    to_date: dt.date
    due: list[Occurrence]  # what the runs of that range record (those recorded before are not again)


class RecordedDate(Frozen):
    """One date of the calendar as the read model holds it (from its event)."""

    key: str
    kind: OccurrenceKind
    year: int
    period: str
    due_at: dt.datetime
    recorded_at: dt.datetime
    event_id: str


class ProgrammeCalendarView(Frozen):
    """GET /v1/programmes/{id}/calendar on the progress service: what the calendar has recorded.

    An evaluation is open from its EvaluationOpened until the scores of its year are snapshotted."""

    programme_id: str
    latest_bulletin: str | None = None  # the latest period whose bulletin was issued, e.g. 2026-Q4
    latest_snapshot: int | None = None  # the latest year whose scores were snapshotted
    evaluation_open: list[int] = []  # evaluation years open now
    dates: list[RecordedDate] = []  # oldest first


def calendar_view(programme_id: str, dates: list[RecordedDate]) -> ProgrammeCalendarView:
    dates = sorted(dates, key=lambda d: (d.due_at, d.key))
    bulletins = [d.period for d in dates if d.kind == "bulletin"]
    snapshots = {d.year for d in dates if d.kind == "snapshot"}
    opened = [d.year for d in dates if d.kind == "evaluation"]
    return ProgrammeCalendarView(
        programme_id=programme_id,
        latest_bulletin=max(bulletins) if bulletins else None,
        latest_snapshot=max(snapshots) if snapshots else None,
        evaluation_open=[y for y in opened if y not in snapshots],
        dates=dates,
    )
