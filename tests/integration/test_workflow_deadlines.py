"""A unit that does nothing is reminded and escalated on the right working days.

Expected dates are computed here with a naive count over `holidays` (not the workflow's
calendar code), from the time-skipping server's clock; for 2027 they are also spelled out.
"""

from __future__ import annotations

import datetime as dt

import pytest
from temporalio.client import WorkflowUpdateFailedError

from contracts.base import Stage
from contracts.commands import AcceptAssignment, ReviewAnnualPlan
from contracts.events import Event
from tests.integration.conftest import (
    SUPERVISOR,
    Kit,
    day_of,
    department,
    independent_add_working_days,
    is_cn_working_day,
    make_spec,
    of_type,
    plan,
    report,
    send,
    status,
)
from workflows.deadlines import quarter_end

add = independent_add_working_days


def expected_notices(
    key: str, due: dt.date, levels: tuple[str, ...] = ("reminder", "blue", "yellow", "red")
) -> set[tuple[str, str, dt.date]]:
    days = {"reminder": add(due, -3), "blue": add(due, 1), "yellow": add(due, 10), "red": add(due, 20)}
    return {(key, level, days[level]) for level in levels}


def notices(events: list[Event]) -> set[tuple[str, str, dt.date]]:
    out = set()
    for e in of_type(events, "ReminderIssued", "SupervisionEscalated"):
        level = "reminder" if e.type == "ReminderIssued" else e.payload["level"]
        out.add((e.payload["deadline"]["key"], level, day_of(e)))
    return out


async def test_an_idle_unit_is_reminded_then_escalated_blue_yellow_red(kit: Kit) -> None:
    created = await kit.today()
    spec = make_spec("beibei", created.year, created.year + 1)
    h = await kit.start(spec)
    due = add(created, 10)
    assert (await status(h)).deadlines["acceptance"].due == due

    await kit.sleep_until(add(due, 22))
    events = await kit.events(spec.assignment_id)
    assert notices(events) == expected_notices("acceptance", due)
    escalations = of_type(events, "SupervisionEscalated")
    assert [(e.payload["level"], e.payload["working_days_overdue"]) for e in escalations] == [
        ("blue", 1),
        ("yellow", 10),
        ("red", 20),
    ]
    assert all(e.actor.role == "system" for e in escalations)
    s = await status(h)
    assert (s.stage, s.overdue_level, s.escalations) == (Stage.ASSIGNED, "red", {"acceptance": "red"})
    assert (s.reminders, s.escalations_total) == (1, 3)

    # Accepting late meets the deadline and clears its escalation.
    await send(h, AcceptAssignment(actor=department("beibei")))
    tail = (await kit.events(spec.assignment_id))[len(events) :]
    assert [e.type for e in tail] == ["AssignmentAccepted", "EscalationCleared"]
    assert tail[1].payload["deadline_key"] == "acceptance"
    s = await status(h)
    assert (s.overdue_level, s.escalations, s.stage) == ("none", {}, Stage.PLANNING)


async def test_quarterly_report_deadlines_across_national_day(kit: Kit) -> None:
    """Plan approved ahead of year Y; Q1 and Q3 never reported, Q2 reported late (after blue)."""
    today = await kit.today()
    year, unit = today.year + 1, "wanzhou"
    spec = make_spec(unit, year, year)
    h = await kit.start(spec)
    await send(h, AcceptAssignment(actor=department(unit)))
    await send(h, plan(unit, year))
    await send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"))
    # Reporting for a quarter that has not begun is refused.
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await send(h, report(unit, f"{year}-Q1", 5))
    assert err.value.cause.message == (  # type: ignore[attr-defined]
        f"progress for {year}-Q1 cannot be reported before the quarter begins on {year}-01-01"
    )

    due = {q: add(quarter_end(year, q), 10) for q in (1, 2, 3)}
    opened = (await status(h)).deadlines
    assert {k: d.due for k, d in opened.items() if k.startswith("report:")} == {
        f"report:{year}-Q{q}": due[q] for q in (1, 2, 3)
    }
    if year == 2027:
        # National Day 2027 is 1-5 October (Friday, then Monday and Tuesday observed).
        assert due == {1: dt.date(2027, 4, 15), 2: dt.date(2027, 7, 14), 3: dt.date(2027, 10, 19)}
        assert add(due[3], 1) == dt.date(2027, 10, 20)

    # Q2 is reported two working days after its blue escalation.
    await kit.sleep_until(add(due[2], 3))
    before = len(await kit.events(spec.assignment_id))
    await send(h, report(unit, f"{year}-Q2", 50))
    tail = (await kit.events(spec.assignment_id))[before:]
    assert [e.type for e in tail] == ["ProgressReported", "EscalationCleared"]

    await kit.sleep_until(dt.date(year, 11, 30))
    events = await kit.events(spec.assignment_id)
    assert notices(events) == (
        expected_notices(f"report:{year}-Q1", due[1])
        | expected_notices(f"report:{year}-Q2", due[2], ("reminder", "blue"))
        | expected_notices(f"report:{year}-Q3", due[3])
    )
    # Every notice falls on a working day; Q3's are all after the National Day holiday.
    assert all(is_cn_working_day(day) for _, _, day in notices(events))
    assert all(day > dt.date(year, 10, 7) for key, _, day in notices(events) if key.endswith("Q3"))
    s = await status(h)
    assert s.escalations == {f"report:{year}-Q1": "red", f"report:{year}-Q3": "red"}
    assert s.stage == Stage.IMPLEMENTING and s.overdue_level == "red"
