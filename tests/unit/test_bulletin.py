"""The bulletin's figures for the scripted year (tests/support/outcome_year.py), worked out by hand:
deadlines due in the period by outcome, escalations raised in it, the red and yellow units, the
overdue items, per month and per task group; and the periods a bulletin may be asked for."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.bulletin import Tally, bulletin_figures, parse_period
from contracts.figures import SHANGHAI
from services.progress import charts
from tests.support import outcome_year as year
from tests.unit.test_outcomes import folded

pytestmark = pytest.mark.unit
GROUPS = {t: (g, title) for t, (g, title, _) in year.GROUPS.items()}


def figures(period: str, as_of: dt.datetime) -> object:
    return bulletin_figures(year.PROGRAMME, parse_period(period), folded(), as_of, GROUPS)


def test_periods_and_the_words_for_a_bad_one() -> None:
    q4 = parse_period("2026-Q4")
    assert (q4.start, q4.end, q4.label) == (dt.date(2026, 10, 1), dt.date(2026, 12, 31), "2026年第四季度")
    assert parse_period("2027-Q1").end == dt.date(2027, 3, 31) and parse_period(" 2027 ").label == "2027年度"
    assert parse_period("2026").months()[-1] == (2026, 12) and len(parse_period("2026-Q2").months()) == 3
    for bad in ("2026-Q5", "26-Q1", "2026Q1", "1999", "2026-q1"):
        with pytest.raises(ValueError, match="2026-Q4"):
            parse_period(bad)


def test_the_years_figures_at_its_end() -> None:
    f = bulletin_figures(year.PROGRAMME, parse_period("2027"), folded(), dt.datetime(2027, 12, 31, 23, tzinfo=SHANGHAI),
                         GROUPS)  # fmt: skip
    # 6 acceptances (gamma's 2 missed), 4 plans (alpha's t28 late), 8 quarterly reports (alpha's t28 Q2 missed,
    # beta's t14 Q1 on time, alpha's t14 Q2 late...): 18 due in the year.
    assert f.deadlines == Tally(on_time=11, late=4, missed=3, pending=0)
    assert (f.assignments, f.accepted, f.verifications_passed, f.verifications_failed) == (6, 4, 1, 1)
    assert f.escalations == {"blue": 0, "yellow": 1, "red": 2}
    assert [(u.unit_id, u.escalations["red"], u.escalations["yellow"], u.tasks) for u in f.escalated_units] == [
        ("gamma", 2, 0, [14, 28]), ("alpha", 0, 1, [28])]  # fmt: skip
    assert [(i.unit_id, i.task_no, i.kind, i.level.value) for i in f.overdue] == [
        ("gamma", 14, "acceptance", "red"), ("gamma", 28, "acceptance", "red"),
        ("alpha", 28, "quarterly_report", "yellow")]  # fmt: skip
    rates = {m.month: m.deadlines.rate for m in f.months if m.deadlines.rate is not None}
    assert {k: round(v, 4) for k, v in rates.items()} == {"2027-01": 0.3333, "2027-02": 0.75, "2027-04": 1.0,
                                                          "2027-07": 0.5}  # fmt: skip
    assert [m.escalations for m in f.months if any(m.escalations.values())] == [
        {"blue": 0, "yellow": 0, "red": 2}, {"blue": 0, "yellow": 1, "red": 0}]  # fmt: skip
    assert [(g.group_no, g.assignments, g.deadlines.on_time, g.deadlines.missed) for g in f.groups] == [
        (4, 3, 6, 1), (6, 3, 5, 2)]  # fmt: skip


def test_a_quarter_counts_only_what_fell_in_it_and_was_recorded_by_then() -> None:
    f = bulletin_figures(year.PROGRAMME, parse_period("2027-Q1"), folded(), parse_period("2027-Q1").closing(), GROUPS)
    # acceptances and plans (the Q1 reports fall due in April)
    assert f.deadlines == Tally(on_time=5, late=3, missed=2, pending=0)
    assert f.escalations["red"] == 2 and f.escalations["yellow"] == 0 and len(f.months) == 3
    assert [i.unit_id for i in f.overdue] == ["gamma", "gamma"]
    early = bulletin_figures(
        year.PROGRAMME, parse_period("2027-Q1"), folded(), dt.datetime(2027, 1, 10, tzinfo=SHANGHAI)
    )
    # alpha accepted both on 5 January; beta's and gamma's acceptances and alpha's two plans not yet due
    assert early.deadlines == Tally(on_time=2, pending=6) and early.overdue == []
    assert [g.title for g in early.groups] == ["其他任务"]  # no group known: one row, not lost


def test_the_charts_carry_the_figures_they_draw() -> None:
    f = bulletin_figures(year.PROGRAMME, parse_period("2027"), folded(), dt.datetime(2027, 12, 31, tzinfo=SHANGHAI),
                         GROUPS)  # fmt: skip
    groups = charts.group_bars(f.groups)
    assert (
        'id="group-chart"' in groups
        and "（四）推动绿色建筑发展" in groups
        and 'class="seg seg-missed" data-count="1"' in groups
    )
    months = charts.monthly(f.months)
    assert months.count('class="rate" data-rate=') == 4 and ">12月<" in months and 'data-count="2"' in months
