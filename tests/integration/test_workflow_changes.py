"""Changes during the year (issue 21) in a running workflow, on the time-skipping server:
extensions (延期申请) move a deadline and its ladder, manual reminders (催办), early closure (销号),
and every refusal with its reason.

Dates come from the test server's clock and a naive count over `holidays` (conftest), and the
plan year is the year after the server's today, so the test does not depend on the real date.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from contracts import timeline
from contracts.base import Actor, Stage, UserRole
from contracts.command_table import BY_COMMAND
from contracts.commands import (
    AcceptAssignment,
    CloseAssignment,
    DecideExtension,
    RemindAssignment,
    RequestExtension,
    RequestVerification,
    ReviewAnnualPlan,
)
from contracts.events import Event
from contracts.working_calendar import SIGNAL_CALENDAR_PUBLISHED, PublishedCalendar
from tests.integration.conftest import (
    SUPERVISOR,
    VERIFIER,
    Handle,
    Kit,
    day_of,
    department,
    independent_add_working_days,
    is_cn_working_day,
    make_spec,
    of_type,
    plan,
    send,
    status,
)
from tests.support.waiting import until
from workflows.calendar import china_year
from workflows.deadlines import quarter_end
from workflows.workflows import COMMAND_REJECTED

add = independent_add_working_days


async def implementing_next_year(kit: Kit, unit: str) -> tuple[Handle, int, str, dt.date]:
    """An assignment whose plan for next year is approved now: its Q1 report is due in April."""
    year = (await kit.today()).year + 1
    spec = make_spec(unit, year, year)
    h = await kit.start(spec)
    await send(h, AcceptAssignment(actor=department(unit)))
    await send(h, plan(unit, year))
    await send(h, ReviewAnnualPlan(actor=SUPERVISOR, year=year, decision="approve"))
    key, due = f"report:{year}-Q1", add(quarter_end(year, 1), 10)
    assert (await status(h)).deadlines[key].due == due
    return h, year, key, due


def notices_for(events: list[Event], key: str) -> list[tuple[str, dt.date]]:
    out = []
    for e in of_type(events, "ReminderIssued", "SupervisionEscalated"):
        if e.payload["deadline"]["key"] == key:
            out.append(("reminder" if e.type == "ReminderIssued" else e.payload["level"], day_of(e)))
    return out


async def test_an_extension_approved_after_yellow_clears_it_and_moves_the_next_reminder(kit: Kit) -> None:
    unit = "fuling"
    h, year, key, due = await implementing_next_year(kit, unit)
    aid = h.id.removeprefix("assignment-")
    await kit.sleep_until(add(due, 11))  # yellow came on the 10th working day after the due date
    assert (await status(h)).escalations == {key: "yellow"}

    asked = dt.date(year, 6, 30)
    r = await send(h, RequestExtension(actor=department(unit), deadline_key=key, new_due=asked, reason="统计数据未出"))
    assert r.n == 1
    granted = dt.date(year, 6, 19)  # the supervisor grants less than asked
    before = len(await kit.events(aid))
    await send(h, DecideExtension(actor=SUPERVISOR, n=1, decision="approve", new_due=granted, reason="可以"))
    tail = (await kit.events(aid))[before:]
    assert [e.type for e in tail] == ["ExtensionApproved", "EscalationCleared"]
    assert (tail[0].payload["old_due"], tail[0].payload["new_due"]) == (due.isoformat(), granted.isoformat())
    s = await status(h)
    assert (s.deadlines[key].due, s.escalations, s.overdue_level) == (granted, {}, "none")
    assert key not in s.notices  # the ladder starts over from the new date
    assert s.extensions[0].status == "approved" and s.extensions[0].approved_due == granted

    # The next notice for the deadline is the reminder three working days before the new date.
    await kit.sleep_until(add(granted, 2))
    after = notices_for((await kit.events(aid))[before:], key)
    assert after == [("reminder", add(granted, -3)), ("blue", add(granted, 1))]


async def test_a_refused_extension_changes_nothing(kit: Kit) -> None:
    unit = "dianjiang"
    h, year, key, due = await implementing_next_year(kit, unit)
    aid = h.id.removeprefix("assignment-")
    await kit.sleep_until(add(due, 11))
    held = await status(h)
    await send(h, RequestExtension(actor=department(unit), deadline_key=key, new_due=dt.date(year, 6, 30), reason="r"))
    before = len(await kit.events(aid))
    await send(h, DecideExtension(actor=SUPERVISOR, n=1, decision="refuse", reason="已多次延误"))
    assert [e.type for e in (await kit.events(aid))[before:]] == ["ExtensionRefused"]
    s = await status(h)
    assert (s.deadlines, s.escalations, s.notices) == (held.deadlines, held.escalations, held.notices)
    assert (s.extensions[0].status, s.extensions[0].decision_reason) == ("refused", "已多次延误")
    # Red comes on the day the original date says.
    await kit.sleep_until(add(due, 21))
    assert notices_for(await kit.events(aid), key)[-1] == ("red", add(due, 20))


async def rejected(h: Handle, cmd: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update(BY_COMMAND[type(cmd)].name, cmd)
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == COMMAND_REJECTED
    return cause.message


async def test_every_refused_change_says_why(kit: Kit) -> None:
    unit = "rongchang"
    me = department(unit)
    h, year, key, due = await implementing_next_year(kit, unit)
    today = await kit.today()

    def ask(**kw: Any) -> RequestExtension:
        fields: dict[str, Any] = {"actor": me, "deadline_key": key, "new_due": dt.date(year, 6, 30), "reason": "r"}
        return RequestExtension(**{**fields, **kw})

    # Wrong role, wrong unit.
    assert await rejected(h, ask(actor=SUPERVISOR)) == (
        f"an extension request must come from unit {unit}; sup-1 has role supervisor"
    )
    assert await rejected(h, ask(actor=department("wulong"))) == (
        f"an extension request must come from unit {unit}; wulong-clerk belongs to unit wulong"
    )
    decide = DecideExtension(actor=me, n=1, decision="approve")
    assert await rejected(h, decide) == (
        f"deciding an extension request is for supervisors; {unit}-clerk has role department"
    )
    assert await rejected(h, RemindAssignment(actor=VERIFIER, message="m")) == (
        "a reminder (催办) is for supervisors; ver-1 has role verifier"
    )
    assert await rejected(h, CloseAssignment(actor=me, reason="done")) == (
        f"closing the assignment (销号) is for supervisors; {unit}-clerk has role department"
    )
    # Dates: outside the programme year, not later, already passed.
    assert await rejected(h, ask(new_due=dt.date(year + 1, 1, 4))) == (
        f"the new date {year + 1}-01-04 is outside the programme year {year} of {key}"
    )
    assert await rejected(h, ask(new_due=due)) == (
        f"the new date {due.isoformat()} is not later than {key}'s due date {due.isoformat()}"
    )
    assert await rejected(h, ask(deadline_key="acceptance")) == (
        f"deadline acceptance is not open (open deadlines: {', '.join(sorted((await status(h)).deadlines))})"
    )
    # One open request per deadline; decisions on what is not open.
    assert (await send(h, ask())).n == 1
    assert await rejected(h, ask(new_due=dt.date(year, 7, 1))) == (
        f"extension request 1 for {key} is still open: wait for the supervisor's decision"
    )
    assert await rejected(h, DecideExtension(actor=SUPERVISOR, n=2, decision="approve")) == (
        "there is no extension request 2 (requests: 1)"
    )
    assert await rejected(h, DecideExtension(actor=SUPERVISOR, n=1, decision="refuse")) == (
        "refusing an extension needs the reason, so the unit knows why"
    )
    assert await rejected(h, DecideExtension(actor=SUPERVISOR, n=1, decision="approve", new_due=today)) == (
        f"the new date {today.isoformat()} is not later than {key}'s due date {due.isoformat()}"
    )
    await send(h, DecideExtension(actor=SUPERVISOR, n=1, decision="refuse", reason="no"))
    assert await rejected(h, DecideExtension(actor=SUPERVISOR, n=1, decision="approve")) == (
        "extension request 1 is already refused"
    )
    # A date already passed: the deadline is overdue and the new date, though later, is gone too.
    later = add(due, 5)
    await kit.sleep_until(later)
    gone = add(due, 2)
    assert await rejected(h, ask(new_due=gone)) == (
        f"the new date {gone.isoformat()} has already passed (today is {later.isoformat()})"
    )
    # Wrong stage: once verification is requested, the year's deadlines are no longer the unit's to move.
    await send(h, RequestVerification(actor=me))
    assert await rejected(h, ask()) == (
        f"verification for {year} has been requested: the year's deadlines can no longer be extended"
    )


async def test_a_manual_reminder_and_an_early_closure_are_events(kit: Kit) -> None:
    unit = "qijiang"
    h, year, key, due = await implementing_next_year(kit, unit)
    aid = h.id.removeprefix("assignment-")
    await send(h, RequestExtension(actor=department(unit), deadline_key=key, new_due=dt.date(year, 6, 30), reason="r"))
    before = len(await kit.events(aid))
    await send(h, RemindAssignment(actor=SUPERVISOR, message="请于本周报送一季度进展"))
    await send(h, CloseAssignment(actor=SUPERVISOR, reason="任务已由市政府调整"))
    tail = (await kit.events(aid))[before:]
    assert [e.type for e in tail] == ["ManualReminderIssued", "AssignmentClosed"]
    assert tail[0].payload["message"] == "请于本周报送一季度进展" and tail[0].actor.role == UserRole.SUPERVISOR
    assert tail[0].payload["deadline"]["key"] == key
    assert tail[1].payload["reason"] == "任务已由市政府调整" and key in tail[1].payload["closes"]
    s = await status(h)
    assert (s.stage, s.deadlines, s.manual_reminders) == (Stage.COMPLETED, {}, 1)
    assert s.extensions[0].status == "lapsed"
    late = RemindAssignment(actor=Actor(sub="sup-2", role=UserRole.SUPERVISOR), message="m")
    assert await rejected(h, late) == (
        f"assignment {aid} was closed (销号): 任务已由市政府调整; it takes no further commands"
    )


async def test_a_calendar_published_for_next_year_moves_a_deadline_in_a_running_workflow(kit: Kit) -> None:
    """A Sunday made a working day before the Q1 report's due date brings that date one working day closer."""
    unit = "nanchuan"
    h, year, key, due = await implementing_next_year(kit, unit)
    aid = h.id.removeprefix("assignment-")
    sunday = next(d for d in (dt.date(year, 4, 1) + dt.timedelta(days=i) for i in range(7)) if d.weekday() == 6)
    assert sunday < due
    package = china_year(year)
    published = PublishedCalendar(
        year=year,
        holidays=package.days_off,
        workdays=[*package.make_up_workdays, sunday],
        source=f"国办发明电〔{year - 1}〕7号",
    )
    before = await status(h)
    await h.signal(SIGNAL_CALENDAR_PUBLISHED, published)

    def works(day: dt.date) -> bool:
        return day == sunday or is_cn_working_day(day)

    expected, left = quarter_end(year, 1), 10
    while left:
        expected += dt.timedelta(days=1)
        left -= works(expected)
    assert expected < due

    async def moved() -> list[Event]:
        return of_type(await kit.events(aid), "DeadlinesRecomputed")

    [event] = await until(moved, "the deadlines recomputed")
    assert event.payload["source"] == published.source and event.payload["year"] == year
    assert {(m["key"], m["old_due"], m["new_due"]) for m in event.payload["moved"]} >= {
        (key, due.isoformat(), expected.isoformat())
    }
    s = await status(h)
    assert s.deadlines[key].due == expected
    # Deadlines before the Sunday, or counted from fixed dates it does not touch, stay.
    assert s.deadlines[f"verification:{year}"].due == before.deadlines[f"verification:{year}"].due
    assert "DeadlinesRecomputed" in timeline.TEMPLATES
    line = timeline.summary(event.type, event.payload)
    assert published.source in line and expected.isoformat() in line
