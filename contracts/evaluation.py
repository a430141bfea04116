"""A five-year evaluation (五年一评估) as a bulletin shows it: per unit, each of its assignments'
self-evaluation (自评) and the verifiers' evaluation score, from the assignments' dated records
(contracts.records) and the programme calendar's recorded dates (contracts.programme_calendar).

Pure, like contracts.bulletin: the read model and the auditors' replay give the same answer.

A period's bulletin carries the evaluation of its year when the calendar recorded the evaluation's
opening with a date inside the period (the year's bulletin and its fourth quarter's, with the
default calendar). The evaluation runs on after the period ends (the verifiers score with the
year-end verification, in the next year), so it is read as of its close, the year's 考核 snapshot,
or as of the bulletin's moment while it is still open: a bulletin made again once it has closed
says the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from contracts.bulletin import Period
from contracts.figures import SHANGHAI, live
from contracts.programme_calendar import RecordedDate
from contracts.records import Recorded

EXCERPT = 40  # characters of a self-evaluation a bulletin shows


class TaskEvaluation(BaseModel):
    """One assignment's part: its latest self-evaluation and the verifiers' score(s), by then."""

    assignment_id: str
    task_no: int
    self_score: float | None = None  # None: no self-evaluation submitted
    revision: int | None = None
    submitted_at: dt.datetime | None = None
    excerpt: str = ""
    scores: list[float] = []  # the verifiers' evaluation scores, oldest first

    @property
    def submitted(self) -> bool:
        return self.self_score is not None


class UnitEvaluation(BaseModel):
    unit_id: str
    tasks: list[TaskEvaluation]  # by task number

    @property
    def submitted(self) -> int:
        return sum(t.submitted for t in self.tasks)


class EvaluationFigures(BaseModel):
    year: int
    opened_at: dt.datetime  # the calendar's date for the opening
    closed_at: dt.datetime | None  # the year's scores snapshot, when recorded by the moment
    as_of: dt.datetime  # what is shown was recorded by then
    assignments: int
    submitted: int  # assignments with a self-evaluation
    scored: int  # assignments with a verifiers' score
    units: list[UnitEvaluation]  # in the order given (the bulletin's order of units)


def _recorded(dates: Sequence[RecordedDate], kind: str, year: int, moment: dt.datetime) -> RecordedDate | None:
    return next((d for d in dates if d.kind == kind and d.year == year and d.recorded_at <= moment), None)


def excerpt(text: str, length: int = EXCERPT) -> str:
    """The text's beginning on one line, with an ellipsis when there is more."""
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


def evaluation_figures(
    period: Period,
    dates: Sequence[RecordedDate],
    states: Sequence[Recorded],
    moment: dt.datetime,
    unit_order: Callable[[str], Any] | None = None,
) -> EvaluationFigures | None:
    """The evaluation of the period's year for its bulletin made at `moment`; None when the calendar
    had not recorded its opening, with a date in the period, by `moment` (the bulletin then leaves
    the section out). `dates` are the calendar's recorded dates; units come in `unit_order` (a sort
    key of a unit id; default: by id)."""
    year = period.year
    opened = _recorded(dates, "evaluation", year, moment)
    if opened is None or not period.holds(opened.due_at.astimezone(SHANGHAI).date()):
        return None
    closed = _recorded(dates, "snapshot", year, moment)
    as_of = min(moment, closed.due_at) if closed is not None else moment
    by_unit: dict[str, list[TaskEvaluation]] = {}
    for s in sorted((s for s in states if live(s, as_of)), key=lambda s: (s.task_no, s.assignment_id)):
        r = s.record
        mine = [e for e in r.self_evaluations if e.year == year and e.at <= as_of]
        latest = max(mine, key=lambda e: (e.at, e.revision), default=None)
        task = TaskEvaluation(
            assignment_id=s.assignment_id,
            task_no=s.task_no,
            scores=[e.score for e in sorted(r.evaluations, key=lambda e: e.at) if e.year == year and e.at <= as_of],
        )
        if latest is not None:
            task.self_score, task.revision, task.submitted_at = latest.score, latest.revision, latest.at
            task.excerpt = excerpt(latest.text)
        by_unit.setdefault(s.unit_id, []).append(task)
    order = unit_order or (lambda unit_id: unit_id)
    units = [UnitEvaluation(unit_id=u, tasks=by_unit[u]) for u in sorted(by_unit, key=order)]
    tasks = [t for u in units for t in u.tasks]
    return EvaluationFigures(
        year=year,
        opened_at=opened.due_at,
        closed_at=None if closed is None else closed.due_at,
        as_of=as_of,
        assignments=len(tasks),
        submitted=sum(t.submitted for t in tasks),
        scored=sum(bool(t.scores) for t in tasks),
        units=units,
    )
