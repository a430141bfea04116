"""Indicator figures and 考核 scores of the scripted year (tests/support/outcome_year.py), worked out
by hand: the pure computations over the fold's dated records, as of two dates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from contracts.figures import SHANGHAI, IndicatorsAnswer, indicators_answer
from contracts.fold import AssignmentState, advance
from contracts.records import Recorded
from contracts.scores import ScoresAnswer, scores_answer
from tests.support import outcome_year as year

pytestmark = pytest.mark.unit

MAY_END = dt.datetime(2027, 5, 31, 23, 59, 59, tzinfo=SHANGHAI)
YEAR_END = dt.datetime(2027, 12, 31, 23, 59, 59, tzinfo=SHANGHAI)


def folded(upto: dt.datetime | None = None) -> list[Recorded]:
    by_id: dict[str, AssignmentState] = {}
    for e in year.events():
        if e.assignment_id is not None and (upto is None or e.occurred_at <= upto):
            by_id[e.assignment_id] = advance(by_id.get(e.assignment_id), e)
    return [Recorded.model_validate(s.model_dump()) for _, s in sorted(by_id.items())]


def figures(as_of: dt.datetime, states: list[Recorded] | None = None) -> IndicatorsAnswer:
    return indicators_answer(year.PROGRAMME, year.OUTCOMES, folded() if states is None else states, as_of)


def scores(as_of: dt.datetime, states: list[Recorded] | None = None) -> ScoresAnswer:
    states = folded() if states is None else states
    return scores_answer(year.PROGRAMME, year.OUTCOMES.scoring, year.OUTCOMES.indicators, states, 2027, as_of)


def city(answer: IndicatorsAnswer) -> dict[str, tuple[float | None, bool | None, float | None]]:
    return {i.id: (i.years[0].value, i.years[0].met, i.years[0].progress) for i in answer.indicators}


def test_city_wide_values_by_each_aggregation_at_year_end() -> None:
    answer = figures(YEAR_END)
    assert city(answer) == {
        year.GREEN: (91.5, True, 91.5),  # mean of alpha 95 and beta 88; gamma never reported
        year.WATER: (66.6667, True, 66.67),  # alpha and beta at 1, of three districts
        year.RETROFIT: (115.0, True, 23.0),  # 70 + 45, goal 500
        year.FOREST: (55.8, False, 97.89),  # alpha's Q2 report is the latest
    }
    green = answer.indicators[0].years[0]
    assert (green.units_reporting, green.units_total) == (2, 3)
    units = {u.unit_id: (u.value, u.target, u.met, u.period) for u in green.units}
    assert units == {"alpha": (95, 92, True, "2027-Q2"), "beta": (88, 90, False, "2027-Q2"),
                     "gamma": (None, None, None, None)}  # fmt: skip


def test_figures_as_of_a_date_read_only_what_was_recorded_by_then() -> None:
    assert city(figures(MAY_END)) == {
        year.GREEN: (89.0, False, 89.0),
        year.WATER: (33.3333, False, 33.33),
        year.RETROFIT: (50.0, False, 10.0),
        year.FOREST: (55.2, False, 96.84),  # beta's Q1 (04-14) is later than alpha's (04-10)
    }
    # The live fold read as of a date gives what the fold of the events up to that date gives.
    assert figures(MAY_END) == figures(MAY_END, folded(MAY_END))
    assert scores(MAY_END) == scores(MAY_END, folded(MAY_END))


def points(answer: ScoresAnswer) -> dict[str, tuple[int, float, dict[str, float]]]:
    return {u.unit_id: (u.rank, u.total, {c.key: c.points for c in u.components}) for u in answer.units}


def test_scores_at_year_end_each_component_shown() -> None:
    answer = scores(YEAR_END)
    assert points(answer) == {
        "alpha": (1, 84.37, {"acceptance": 15, "plans": 15, "reports": 15.62, "verification": 20,
                             "escalations": 8.75, "indicators": 10}),
        "beta": (2, 65.83, {"acceptance": 7.5, "plans": 20, "reports": 25, "verification": 0,
                            "escalations": 10, "indicators": 3.33}),
        "gamma": (3, 0, {"acceptance": 0, "plans": 0, "reports": 0, "verification": 0,
                         "escalations": 0, "indicators": 0}),
    }  # fmt: skip
    alpha = {c.key: c for c in answer.units[0].components}
    assert alpha["reports"].detail == "按期 2，逾期办理 1，未办 1" and alpha["reports"].counted == 4
    gamma = {c.key: c for c in answer.units[2].components}
    assert gamma["acceptance"].detail == "按期 0，逾期办理 0，未办 2"
    assert "尚未签收" in gamma["escalations"].detail and "红 2" in gamma["escalations"].detail
    assert answer.max_total == 100


def test_a_unit_that_accepted_nothing_scores_lowest_on_timeliness() -> None:
    def timeliness(as_of: dt.datetime) -> dict[str, float]:
        return {u.unit_id: sum(c.points for c in u.components if c.key in ("acceptance", "plans", "reports"))
                for u in scores(as_of).units}  # fmt: skip

    for as_of in (MAY_END, YEAR_END):
        t = timeliness(as_of)
        assert t["gamma"] == 0 < min(t["alpha"], t["beta"])
    # Before any acceptance is due, not having accepted still earns nothing (beta accepts on 01-20).
    assert timeliness(dt.datetime(2027, 1, 10, tzinfo=SHANGHAI)) == {"alpha": 60, "beta": 0, "gamma": 0}


def test_scores_as_of_may() -> None:
    alpha = points(scores(MAY_END))["alpha"]
    # Q2 not yet due; the verification and the yellow escalation come later; 2 of 3 targets met by Q1
    assert alpha == (1, 91.67, {"acceptance": 15, "plans": 15, "reports": 25, "verification": 20,
                                "escalations": 10, "indicators": 6.67})  # fmt: skip


def test_a_department_sees_its_own_row_with_its_rank_among_all() -> None:
    states = folded()
    only = scores_answer(year.PROGRAMME, year.OUTCOMES.scoring, [], states, 2027, YEAR_END, unit_id="beta")
    assert [(u.unit_id, u.rank) for u in only.units] == [("beta", 2)]
    mine = indicators_answer(year.PROGRAMME, year.OUTCOMES, states, YEAR_END, unit_id="beta")
    assert {u.unit_id for i in mine.indicators for y in i.years for u in y.units} == {"beta"}
    assert city(mine) == city(figures(YEAR_END))  # the city-wide value stays city-wide


def test_an_approved_extension_moves_the_due_date_and_early_closure_drops_what_was_open() -> None:
    from contracts import events as ev
    from contracts.records import OutcomeRecord, note
    from contracts.scores import deadline_outcomes

    record = OutcomeRecord()
    moved = year.PLAN.model_copy(update={"due": dt.date(2027, 2, 28)})
    facts: list[tuple[str, ev.Fact]] = [
        ("2027-01-04", ev.AssignmentCreated(task_title="t", role="responsible", start_year=2027, horizon_year=2030,
                                            opens=[year.ACCEPTANCE])),
        ("2027-01-05", ev.AssignmentAccepted(year=2027, closes=[year.ACCEPTANCE.key], opens=[year.PLAN])),
        ("2027-02-05", ev.ExtensionApproved(n=1, deadline_key=year.PLAN.key, old_due=year.PLAN.due,
                                            new_due=moved.due, opens=[moved])),
        ("2027-02-20", year._plan([])),  # after the first due, before the extended one
        ("2027-02-21", ev.AnnualPlanApproved(year=2027, revision=1, opens=[year.Q1])),
        ("2027-03-01", ev.AssignmentClosed(year=2027, reason="提前办结", closes=[year.Q1.key])),
    ]  # fmt: skip
    open_now: dict[str, ev.Deadline] = {}
    for day, fact in facts:
        note(record, fact, year.at(day), open_now)
        for key in fact.closes:
            open_now.pop(key, None)
        open_now.update({d.key: d for d in fact.opens})
    outcomes = {k: v[1] for k, v in deadline_outcomes(record.deadlines, YEAR_END).items()}
    assert outcomes == {"acceptance": "on_time", year.PLAN.key: "on_time", year.Q1.key: "dropped"}


def test_the_example_programme_ships_a_labelled_example_set_of_indicators() -> None:

    from services.assignment.programme_dir import load_programme_dir

    example = Path(__file__).resolve().parents[2] / "examples" / "cq-2022-79"
    body = load_programme_dir(example)
    out = body.outcomes
    assert out.example and "EXAMPLE" in out.note and out.scoring.example
    assert {i.id: i.aggregation for i in out.indicators} == {
        "green_building_share": "mean", "water_saving_county": "share_at_or_above", "retrofit_area": "sum",
        "forest_coverage": "latest"}  # fmt: skip
    tasks = {t.no for t in body.programme.tasks()}
    assert all(set(i.tasks) <= tasks and i.goal_year in (2025, 2035) for i in out.indicators)
    assert out.scoring.weights.total() == 100


def test_a_bad_indicators_file_names_the_line_and_the_field(tmp_path: Path) -> None:
    from services.assignment.programme_dir import load_outcomes
    from services.assignment.source_files import DivisionError

    path = tmp_path / "indicators.yaml"
    path.write_text(
        "indicators:\n  - id: share\n    name: 占比\n    tasks: [1]\n    aggregation: share_at_or_above\n"
        "    goal_year: 2025\n    goal: 100\n  - id: Bad-Id\n    name: x\n    tasks: [1]\n    aggregation: sum\n"
        "    goal_year: 2025\n    goal: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(DivisionError) as caught:
        load_outcomes(path)
    text = str(caught.value)
    assert "share_at_or_above needs a threshold" in text and "indicators.1.id" in text and ":8:" in text


def test_a_reassigned_assignment_leaves_the_old_unit_and_starts_accepted_with_the_new() -> None:
    from contracts import events as ev
    from contracts.division_facts import AssignmentReassigned, Handover
    from contracts.ids import assignment_id

    old, new = assignment_id(year.PROGRAMME, 14, "gamma"), assignment_id(year.PROGRAMME, 14, "delta")
    plan = {"year": 2027, "revision": 1, "status": "approved", "milestones": [],
            "indicators": [{"id": year.GREEN, "name": "绿色建筑占比", "target": 80}]}  # fmt: skip
    handover = Handover(from_assignment_id=old, from_unit_id="gamma", to_assignment_id=new, to_unit_id="delta",
                        reason="职责调整", accepted=True, plan=plan)  # fmt: skip
    moved = ev.make_event(AssignmentReassigned(handover=handover), seq=2, occurred_at=year.at("2027-03-01"),
                          programme_id=year.PROGRAMME, actor=year.SUPERVISOR, assignment_id=old, task_no=14,
                          unit_id="gamma")  # fmt: skip
    created = ev.AssignmentCreated(task_title="t", role="responsible", start_year=2027, horizon_year=2030,
                                   handover=handover)  # fmt: skip
    started = ev.make_event(created, seq=0, occurred_at=year.at("2027-03-01"), programme_id=year.PROGRAMME,
                            actor=year.SUPERVISOR, assignment_id=new, task_no=14, unit_id="delta")  # fmt: skip
    states = {s.assignment_id: s for s in folded()}
    by_id: dict[str, AssignmentState] = {}
    for e in [e for e in year.events() if e.assignment_id == old] + [moved, started]:
        assert e.assignment_id is not None
        by_id[e.assignment_id] = advance(by_id.get(e.assignment_id), e)
    states |= {k: Recorded.model_validate(v.model_dump()) for k, v in by_id.items()}
    answer = scores(YEAR_END, sorted(states.values(), key=lambda s: s.assignment_id))
    gamma_tasks = {u.unit_id: u.assignments for u in answer.units}
    assert gamma_tasks["gamma"] == 1 and gamma_tasks["delta"] == 1  # t14 left gamma for delta
    delta = next(u for u in answer.units if u.unit_id == "delta")
    assert delta.started and {c.key: c.detail for c in delta.components}["indicators"] == "达标 0 / 目标 1"
