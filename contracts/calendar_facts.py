"""Facts of the programme's own calendar (contracts.programme_calendar), recorded by its schedule.
Listed in contracts.events.FACT_TYPES. Each names the programme in `programme_id`: the envelope's
programme id is the calendar's stream (`calendar-<id>`), whose sequence is its own."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from contracts.fact_base import Fact
from contracts.ids import QUARTER_PATTERN


class BulletinIssued(Fact):
    """The quarter's 督查通报 was issued (its figures are the read model's as of `due_at`)."""

    TYPE = "BulletinIssued"
    programme_id: str
    period: str = Field(pattern=QUARTER_PATTERN)
    due_at: dt.datetime  # the calendar's date for it (China time)


class ScoresSnapshotted(Fact):
    """The year's 考核 scores were taken as they stand at `due_at` (contracts.scores as of then)."""

    TYPE = "ScoresSnapshotted"
    programme_id: str
    year: int
    due_at: dt.datetime


class EvaluationOpened(Fact):
    """The five-year evaluation (五年一评估) of `year` opened: units may send their self-evaluations."""

    TYPE = "EvaluationOpened"
    programme_id: str
    year: int
    due_at: dt.datetime


CALENDAR_FACTS: tuple[type[Fact], ...] = (BulletinIssued, ScoresSnapshotted, EvaluationOpened)
