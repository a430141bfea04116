"""What is said, and to whom: the Chinese text of each notice, made from an event (pure, no I/O).

Each notice names the task, the unit, the deadline with the working days left (or overdue) by the
working calendar the deadlines use, and links to the assignment's page in the workbench.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from contracts import labels
from contracts.base import OverdueLevel
from contracts.division_facts import AssignmentReassigned, AssignmentRemoved, AssignmentRevised
from contracts.events import (
    AnnualPlanReturned,
    AssignmentCancelled,
    AssignmentClosed,
    AssignmentCreated,
    CooperatingReportReceived,
    Deadline,
    Event,
    ExtensionApproved,
    ExtensionRefused,
    ExtensionRequested,
    Fact,
    ManualReminderIssued,
    ReminderIssued,
    SupervisionEscalated,
    VerificationFailed,
)
from contracts.text import shown
from services.notify.store import supervisors_of
from workflows.calendar import shanghai_date, working_days_between

# The facts someone is told of; the others (plans submitted, progress, approvals) are not pushed.
NOTIFIED = frozenset(
    {
        AssignmentCreated.TYPE,
        AnnualPlanReturned.TYPE,
        ReminderIssued.TYPE,
        SupervisionEscalated.TYPE,
        VerificationFailed.TYPE,
        CooperatingReportReceived.TYPE,
        AssignmentCancelled.TYPE,
        ManualReminderIssued.TYPE,
        ExtensionRequested.TYPE,
        ExtensionApproved.TYPE,
        ExtensionRefused.TYPE,
        AssignmentClosed.TYPE,
        AssignmentReassigned.TYPE,
        AssignmentRemoved.TYPE,
        AssignmentRevised.TYPE,
    }
)


@dataclass(frozen=True)
class Notice:
    owners: tuple[str, ...]  # whose subscriptions receive it: the unit, and for red the supervisors
    subject: str
    text: str
    link: str | None
    level: str | None


def delivery_id(event_id: str, channel: str, recipient: str) -> str:
    """Stable across retries and restarts: the receiver's key for dropping a repeat."""
    return hashlib.sha256(f"{event_id}\n{channel}\n{recipient}".encode()).hexdigest()[:32]


def workbench_link(public_base_url: str, assignment_id: str | None) -> str | None:
    if not assignment_id:
        return None
    return f"{public_base_url.rstrip('/')}/workbench/assignments/{assignment_id}"


def _date(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def due_words(due: dt.date, today: dt.date) -> str:
    """`2026年4月1日前（还有5个工作日）`, or how many working days it is overdue."""
    left = working_days_between(today, due)
    if left > 0:
        return f"{_date(due)}前（还有{left}个工作日）"
    if left == 0:
        return f"{_date(due)}前（今天到期）"
    return f"{_date(due)}前（已逾期{-left}个工作日）"


def _first_open(fact: Fact) -> Deadline | None:
    return fact.opens[0] if fact.opens else None


def notice(
    event: Event, task_title: str | None, public_base_url: str, name_of: Callable[[str], str] = str
) -> Notice | None:
    """The notice for an event, or None when nobody is told of it. `name_of` gives a unit's name
    (its id when the registry is out of reach)."""
    if event.type not in NOTIFIED or not event.unit_id:
        return None
    fact = event.fact()
    unit = name_of(event.unit_id)
    task = f"第{event.task_no}项任务“{task_title}”" if task_title else f"第{event.task_no}项任务"
    today = shanghai_date(event.occurred_at)
    link = workbench_link(public_base_url, event.assignment_id)
    owners: tuple[str, ...] = (event.unit_id,)
    level: str | None = None
    opened = _first_open(fact)
    when = f"请于{due_words(opened.due, today)}完成{labels.deadline(opened.key)}。" if opened else ""
    if isinstance(fact, AssignmentCreated):
        subject, text = created_words(fact, unit, task, when, name_of)
    elif isinstance(fact, AnnualPlanReturned):
        subject = f"【计划退回】{task} {fact.year}年度计划"
        text = f"{unit}：{task}的{fact.year}年度计划（第{fact.revision}版）被退回。退回理由：{fact.reasons}。{when}"
    elif isinstance(fact, ReminderIssued):
        d = fact.deadline
        subject = f"【{labels.fact(fact.TYPE)}】{task} {labels.deadline(d.key)}"
        text = f"{unit}：{task}的{labels.deadline(d.key)}应于{due_words(d.due, today)}完成，请抓紧办理。"
    elif isinstance(fact, SupervisionEscalated):
        d, level = fact.deadline, fact.level.value
        words = labels.level(level)
        subject = f"【{words}】{task} {labels.deadline(d.key)}已逾期{fact.working_days_overdue}个工作日"
        text = (
            f"{unit}：{task}的{labels.deadline(d.key)}应于{_date(d.due)}完成，已逾期{fact.working_days_overdue}"
            f"个工作日，现予{words}，请立即办理。"
        )
        if fact.level == OverdueLevel.RED:
            owners = (event.unit_id, *supervisors_of(event.programme_id, event.task_no, event.unit_id))
    elif isinstance(fact, VerificationFailed):
        subject = f"【核验未通过】{task} {fact.year}年度"
        text = (
            f"{unit}：{task}的{fact.year}年度核验未通过。核验意见：{fact.findings}。"
            f"请于{due_words(fact.rework_due, today)}完成整改。"
        )
    elif isinstance(fact, CooperatingReportReceived):
        subject = f"【配合单位进展】{task} {labels.period(fact.period)}"
        text = (
            f"{unit}：配合单位{name_of(fact.from_unit_id)}报送了{task}{labels.period(fact.period)}的进展"
            f"（完成{fact.percent:g}%）：{fact.narrative}。请牵头单位汇总。"
        )
    elif isinstance(fact, ManualReminderIssued | ExtensionApproved | ExtensionRefused | AssignmentClosed):
        subject, text = change_words(fact, unit, task, today)
    elif isinstance(fact, ExtensionRequested):
        # The unit asked it itself: the supervisors, who decide, are told.
        owners = supervisors_of(event.programme_id, event.task_no, event.unit_id)
        what = labels.deadline(fact.deadline_key)
        subject = f"【延期申请】{unit} {task} {what}"
        text = (
            f"{unit}申请将{task}的{what}由{_date(fact.due)}延至{_date(fact.new_due)}（第{fact.n}号申请）。"
            f"申请理由：{fact.reason}。请审批。"
        )
    elif isinstance(fact, AssignmentReassigned | AssignmentRemoved | AssignmentRevised):
        subject, text = division_words(fact, unit, task, name_of)
    else:
        assert isinstance(fact, AssignmentCancelled)
        subject = f"【任务撤销】{task}"
        text = f"{unit}：{task}已撤销。理由：{fact.reason}。"
    if link:
        text += f"\n办理链接：{link}"
    # Names and free text from people, spelled out where they hide something (contracts/text.py);
    # a subject is one line.
    subject, text = shown(subject, keep=frozenset()), shown(text)
    return Notice(owners=owners, subject=subject, text=text, link=link, level=level)


def change_words(
    fact: ManualReminderIssued | ExtensionApproved | ExtensionRefused | AssignmentClosed,
    unit: str,
    task: str,
    today: dt.date,
) -> tuple[str, str]:
    """Subject and text of a change a person made during the year (issue 21)."""
    if isinstance(fact, ManualReminderIssued):
        d = fact.deadline
        when = f"{labels.deadline(d.key)}应于{due_words(d.due, today)}完成。" if d else ""
        return f"【督查催办】{task}", f"{unit}：督查人员就{task}催办：{fact.message}。{when}"
    if isinstance(fact, ExtensionApproved):
        what = labels.deadline(fact.deadline_key)
        said = f"意见：{fact.reason}。" if fact.reason else ""
        return (
            f"【延期批准】{task} {what}",
            f"{unit}：{task}的{what}延期申请（第{fact.n}号）已批准，期限改为{due_words(fact.new_due, today)}。{said}",
        )
    if isinstance(fact, ExtensionRefused):
        what = labels.deadline(fact.deadline_key)
        return (
            f"【延期不予批准】{task} {what}",
            f"{unit}：{task}的{what}延期申请（第{fact.n}号）不予批准。理由：{fact.reason}。请按原期限办理。",
        )
    return f"【办结销号】{task}", f"{unit}：{task}已办结销号。理由：{fact.reason}。"


def division_words(
    fact: AssignmentReassigned | AssignmentRemoved | AssignmentRevised,
    unit: str,
    task: str,
    name_of: Callable[[str], str],
) -> tuple[str, str]:
    """Subject and text for the unit that held the assignment when the division of work changed."""
    if isinstance(fact, AssignmentReassigned):
        to = name_of(fact.handover.to_unit_id)
        return (
            f"【转办】{task}",
            f"{unit}：{task}已转办给{to}，您单位不再承担。转办理由：{fact.handover.reason}。此前的办理记录保留。",
        )
    if isinstance(fact, AssignmentRemoved):
        return (
            f"【任务调整】{task}",
            f"{unit}：任务分工第{fact.revision}次修订后，您单位不再承担{task}。理由：{fact.reason}。此前的办理记录保留。",
        )
    what = []
    if fact.role is not None:
        what.append(f"职责调整为{labels.role(fact.role.value)}")
    if fact.horizon_year is not None:
        what.append(f"期限调整至{fact.horizon_year}年")
    if "lead_assignment_id" in fact.changed:
        what.append("牵头单位有调整")
    which = f"第{fact.revision}次修订：" if fact.revision else ""
    return f"【任务调整】{task}", f"{unit}：{task}{which}{'，'.join(what)}。理由：{fact.reason}。"


def created_words(
    fact: AssignmentCreated, unit: str, task: str, when: str, name_of: Callable[[str], str]
) -> tuple[str, str]:
    """A new assignment: plain, handed over from another unit (转办), or added by a revision."""
    role = labels.role(fact.role.value)
    if fact.handover:
        came_from = name_of(fact.handover.from_unit_id)
        return (
            f"【转办】{task}",
            f"{unit}：{task}（{role}）由{came_from}转办给您单位。转办理由：{fact.handover.reason}。{when}",
        )
    if fact.revision:
        return f"【新增任务】{task}", f"{unit}：任务分工第{fact.revision}次修订，您单位新增承担{task}（{role}）。{when}"
    return f"【新任务】{task}", f"{unit}：您单位承担{task}（{role}）。{when}"
