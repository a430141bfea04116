"""The notifier's pure parts: quiet hours on the working calendar, the texts, address checks, and its
FastStream subscriber under TestNatsBroker (no server)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest
from faststream.nats import TestNatsBroker

from contracts.base import Actor, Role, UserRole
from contracts.division_facts import AssignmentReassigned, AssignmentRemoved, AssignmentRevised, Handover
from contracts.events import (
    AssignmentClosed,
    Deadline,
    Event,
    ExtensionApproved,
    ExtensionRefused,
    ExtensionRequested,
    ManualReminderIssued,
    ReminderIssued,
)
from contracts.subjects import event_subject
from services.notify.addresses import AddressRefused, check_email, check_webhook_url
from services.notify.channels import signature, webhook_body
from services.notify.messages import delivery_id, due_words, notice
from services.notify.names import UnitNames
from services.notify.quiet import QuietHours, QuietHoursInvalid
from services.notify.settings import NotifySettings
from services.notify.store import SUPERVISORS
from services.notify.subscribers import notifier_broker
from tests.e2e.support import EventFactory
from workflows.calendar import SHANGHAI, ChinaCalendar

QUIET = QuietHours.parse("22:00-07:30")
PACKAGE = ChinaCalendar()  # no year published: the `holidays` package's calendar


def beijing(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("made", "released"),
    [
        (beijing(2026, 1, 7, 23, 0), beijing(2026, 1, 8, 7, 30)),  # Wednesday night -> Thursday morning
        (beijing(2026, 1, 8, 3, 0), beijing(2026, 1, 8, 7, 30)),  # small hours of a working day
        (beijing(2026, 1, 9, 23, 0), beijing(2026, 1, 12, 7, 30)),  # Friday night -> Monday
        (beijing(2026, 1, 10, 23, 0), beijing(2026, 1, 12, 7, 30)),  # Saturday -> Monday
        (beijing(2026, 1, 10, 12, 0), beijing(2026, 1, 12, 7, 30)),  # a day off is quiet all day
        (beijing(2026, 1, 3, 23, 0), beijing(2026, 1, 4, 7, 30)),  # Saturday before a 调休 Sunday
        (beijing(2026, 2, 13, 23, 0), beijing(2026, 2, 14, 7, 30)),  # Friday before the 调休 Saturday 2-14
        (beijing(2026, 9, 30, 23, 0), beijing(2026, 10, 8, 7, 30)),  # National Day: the first working day after it
        (beijing(2026, 3, 2, 0, 0), beijing(2026, 3, 2, 7, 30)),  # deadlines fall due at midnight
    ],
)
def test_quiet_hours_hold_until_the_next_working_morning(made: dt.datetime, released: dt.datetime) -> None:
    assert QUIET is not None
    assert QUIET.release(made, PACKAGE) == released.astimezone(dt.UTC)


def test_outside_quiet_hours_a_notice_goes_at_once_and_the_setting_is_checked() -> None:
    assert QUIET is not None
    at = beijing(2026, 1, 7, 7, 30)
    assert QUIET.release(at, PACKAGE) == at.astimezone(dt.UTC)
    tiaoxiu_sunday = beijing(2026, 1, 4, 10, 0)
    assert QUIET.release(tiaoxiu_sunday, PACKAGE) == tiaoxiu_sunday.astimezone(dt.UTC)
    assert QuietHours.parse("") is None
    for bad in ("22-7", "25:00-07:00", "08:00-08:00"):
        with pytest.raises(QuietHoursInvalid):
            QuietHours.parse(bad)


def test_due_words_count_working_days() -> None:
    # 2026-01-01..03 are holidays, 01-04 (a Sunday) is worked: from 12-31 to 01-05 there are two.
    assert due_words(dt.date(2026, 1, 5), dt.date(2025, 12, 31)) == "2026年1月5日前（还有2个工作日）"
    assert due_words(dt.date(2026, 1, 5), dt.date(2026, 1, 5)) == "2026年1月5日前（今天到期）"
    assert due_words(dt.date(2026, 1, 5), dt.date(2026, 1, 7)) == "2026年1月5日前（已逾期2个工作日）"


def test_texts_name_the_task_unit_deadline_and_link() -> None:
    f = EventFactory("cq-2022-79", 14, "yuzhong")
    red = notice(f.escalated("red"), "建设高品质绿色建筑", "https://pf.example.gov.cn/")
    district, task = f"{SUPERVISORS}:unit:yuzhong", f"{SUPERVISORS}:task:cq-2022-79/14"
    assert red is not None and red.owners == ("yuzhong", SUPERVISORS, district, task) and red.level == "red"
    assert "红色督办" in red.subject and "第14项任务“建设高品质绿色建筑”" in red.text and "yuzhong" in red.text
    assert "2026年度计划" in red.text and "已逾期25个工作日" in red.text
    assert red.link == f"https://pf.example.gov.cn/workbench/assignments/{f.assignment_id}"
    yellow = notice(f.escalated("yellow"), None, "https://pf.example.gov.cn")
    assert yellow is not None and yellow.owners == ("yuzhong",) and "黄色督办" in yellow.text
    due = Deadline(key="report:2026-Q2", kind="quarterly_report", due=dt.date(2026, 7, 10), year=2026)
    reminder = f.next(ReminderIssued(deadline=due))
    text = notice(reminder, "t", "http://x")
    assert text is not None and "2026年第二季度进展填报" in text.text and "个工作日" in text.text
    assert notice(f.reported(10.0), "t", "http://x") is None  # progress reports are not pushed


def test_a_supervisors_reminder_extension_decisions_and_closure_reach_the_unit() -> None:
    f = EventFactory("cq-2022-79", 14, "yuzhong")
    sup = Actor(sub="sup-1", role=UserRole.SUPERVISOR)
    due = Deadline(key="report:2026-Q2", kind="quarterly_report", due=dt.date(2026, 7, 10), year=2026)
    reminded = notice(f.next(ManualReminderIssued(message="请本周内报送", deadline=due), sup), "t", "http://x")
    assert reminded is not None and reminded.subject.startswith("【督查催办】")
    assert "请本周内报送" in reminded.text and "2026年第二季度进展填报" in reminded.text
    moved = ExtensionApproved(n=2, deadline_key=due.key, old_due=due.due, new_due=dt.date(2026, 8, 3))
    approved = notice(f.next(moved, sup), "t", "http://x")
    assert approved is not None and "第2号）已批准" in approved.text and "2026年8月3日前" in approved.text
    refused = notice(f.next(ExtensionRefused(n=3, deadline_key=due.key, reason="理由不充分"), sup), "t", "http://x")
    assert refused is not None and "不予批准" in refused.subject and "理由不充分" in refused.text
    closed = notice(f.next(AssignmentClosed(year=2026, reason="已提前完成"), sup), "t", "http://x")
    assert closed is not None and "办结销号" in closed.subject and "已提前完成" in closed.text
    asked = ExtensionRequested(n=1, deadline_key=due.key, due=due.due, new_due=dt.date(2026, 8, 1), reason="r")
    request = notice(f.next(asked), "t", "http://x")  # the unit asked it itself: the supervisors decide
    owners = (SUPERVISORS, f"{SUPERVISORS}:unit:yuzhong", f"{SUPERVISORS}:task:cq-2022-79/14")
    assert request is not None and request.owners == owners and "【延期申请】" in request.subject
    assert "延至2026年8月1日（第1号申请）" in request.text and "请审批" in request.text


def test_a_reassignment_a_removal_and_a_revised_role_reach_the_units_that_held_them() -> None:
    old, new = EventFactory("cq-2022-79", 14, "yuzhong"), EventFactory("cq-2022-79", 14, "jiangbei")
    sup = Actor(sub="sup-1", role=UserRole.SUPERVISOR)
    names = {"yuzhong": "渝中区", "jiangbei": "江北区"}.__getitem__
    handover = Handover(
        from_assignment_id=old.assignment_id,
        from_unit_id="yuzhong",
        to_assignment_id=new.assignment_id,
        to_unit_id="jiangbei",
        reason="职能调整",
    )
    left = notice(old.next(AssignmentReassigned(handover=handover), sup), "t", "http://x", names)
    assert left is not None and left.owners == ("yuzhong",) and left.subject.startswith("【转办】")
    assert "已转办给江北区" in left.text and "职能调整" in left.text
    created = new.created()
    arrived = created.model_copy(update={"payload": {**created.payload, "handover": handover.model_dump(mode="json")}})
    taken = notice(arrived, "t", "http://x", names)
    assert taken is not None and taken.owners == ("jiangbei",) and taken.subject.startswith("【转办】")
    assert "由渝中区转办给您单位" in taken.text and "职能调整" in taken.text
    removed = notice(old.next(AssignmentRemoved(revision=2, reason="清单调整"), sup), "t", "http://x", names)
    assert removed is not None and "第2次修订后，您单位不再承担" in removed.text and "清单调整" in removed.text
    revised = AssignmentRevised(reason="分工调整", revision=3, changed=["role"], role=Role.LEAD)
    changed = notice(old.next(revised, sup), "t", "http://x", names)
    assert changed is not None and "第3次修订：职责调整为" in changed.text and "分工调整" in changed.text


def test_a_delivery_is_signed_over_the_exact_body_and_its_id_is_stable() -> None:
    assert delivery_id("a#000001", "webhook", "http://h/x") == delivery_id("a#000001", "webhook", "http://h/x")
    assert delivery_id("a#000001", "webhook", "http://h/x") != delivery_id("a#000001", "email", "http://h/x")
    row = {
        "id": "d1", "event_id": "e", "event_type": "SupervisionEscalated", "unit_id": "u", "assignment_id": "a",
        "level": "red", "subject": "s", "text": "红色督办", "link": None,
        "occurred_at": dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    }  # fmt: skip
    body = webhook_body(row)
    assert body == webhook_body(dict(row)) and "红色督办".encode() in body
    assert signature("k", body) == "sha256=" + __import__("hmac").new(b"k", body, "sha256").hexdigest()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest",
        "http://[fe80::1]/x",
        "http://100.100.100.200/",
        "http://metadata.google.internal/",
        "gopher://x/",
        "http://u:p@example.org/",
        "http://127.0.0.1/x",
        "http://10.1.2.3/x",
    ],
)
def test_webhook_urls_refused(url: str) -> None:
    with pytest.raises(AddressRefused) as refused:
        check_webhook_url(url, allow_private=False)
    # The reason is in Chinese; English words appear only inside parentheses.
    outside = re.sub(r"\([^)]*\)|“[^”]*”|\S+://\S*", "", str(refused.value))
    assert re.search(r"[\u4e00-\u9fff]", outside)
    assert not re.search(r"[A-Za-z]+ [A-Za-z]+", outside), outside


def test_private_urls_only_when_allowed_and_emails_checked() -> None:
    assert check_webhook_url("http://127.0.0.1:9/x", allow_private=True) == "http://127.0.0.1:9/x"
    with pytest.raises(AddressRefused):
        check_webhook_url("http://169.254.169.254/", allow_private=True)
    assert check_email(" a.b@example.org ") == "a.b@example.org"
    for bad in ("a@", "@b", "a b@c.d", "a@b@c", "x@y.z\nBcc: e@f.g"):
        with pytest.raises(AddressRefused):
            check_email(bad)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[tuple[str, int]] = []
        self.rejected: list[tuple[str, str | None]] = []
        self.fail = fail

    async def reject(self, _seq: int, _subject: str, _body: bytes, reason: str, event_id: str | None) -> None:
        self.rejected.append((reason, event_id))

    async def record(self, event: Event, seq: int) -> None:
        if self.fail:
            raise RuntimeError("database down")
        self.seen.append((event.event_id, seq))


@pytest.mark.parametrize("fail", [False, True])
async def test_the_subscriber_records_then_acks_or_naks(fail: bool) -> None:
    recorder = Recorder(fail)
    broker = notifier_broker(NotifySettings(), recorder)  # type: ignore[arg-type]
    event = EventFactory("cq-2022-79", 2, "wanzhou").escalated("blue")
    subject = event_subject(event.programme_id, event.unit_id, event.type)
    handler: Any = broker.subscribers[0]
    async with TestNatsBroker(broker) as br:
        await br.publish(event.model_dump(mode="json"), subject, stream="POLICYFLOW_EVENTS")
        handler.calls[0].handler.mock.assert_called_once()
    assert recorder.seen == ([] if fail else [(event.event_id, recorder.seen[0][1])])


async def test_unreadable_messages_are_handed_to_the_reject_recorder_not_the_intake() -> None:
    recorder = Recorder()
    broker = notifier_broker(NotifySettings(), recorder)  # type: ignore[arg-type]
    good = EventFactory("cq-2022-79", 2, "wanzhou").escalated("blue")
    unknown = good.model_copy(update={"type": "Nope", "event_id": "n#1"})
    subject = event_subject(good.programme_id, good.unit_id, good.type)
    async with TestNatsBroker(broker) as br:
        for body in (b"{oops", b'{"event_id": "e#1"}', unknown.model_dump(mode="json"), good.model_dump(mode="json")):
            await br.publish(body, subject, stream="POLICYFLOW_EVENTS")
    assert recorder.seen == [(good.event_id, 0)]
    reasons = [r for r, _ in recorder.rejected]
    assert "not valid JSON" in reasons[0] and "not an event" in reasons[1] and "Nope" in reasons[2]
    assert [e for _, e in recorder.rejected] == [None, "e#1", "n#1"]


def test_texts_name_units_by_their_registry_names() -> None:
    names = {"yuzhong": "渝中区", "fgw": "市发展改革委"}.get
    f = EventFactory("cq-2022-79", 3, "yuzhong")
    red = notice(f.escalated("red"), "t", "http://x", lambda u: names(u) or u)
    assert red is not None and red.text.startswith("渝中区：") and "yuzhong：" not in red.text
    assert red.owners[:2] == ("yuzhong", SUPERVISORS)  # subscriptions stay keyed by the unit id


async def test_unit_names_are_fetched_page_by_page_cached_and_fall_back_to_the_id() -> None:
    units = [{"unit_id": f"u{i}", "name": f"单位{i}", "kind": "district"} for i in range(3)]
    calls: list[str] = []
    up = True

    def registry(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if not up:
            return httpx.Response(503)
        assert "authorization" not in request.headers  # the registry is public
        offset, limit = int(request.url.params["offset"]), 2  # the server pages by two here
        return httpx.Response(200, json={"items": units[offset : offset + limit], "total": len(units)})

    now = [0.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(registry)) as http:
        names = UnitNames(http, "http://assignment/", ttl=600, retry_after=30, monotonic=lambda: now[0])
        await names.refresh(["u0"])
        assert [names.name(f"u{i}") for i in range(3)] == ["单位0", "单位1", "单位2"] and len(calls) == 2
        await names.refresh(["u1"])
        assert len(calls) == 2  # cached
        await names.refresh(["new"])  # an id the registry did not have: fetched again, once per 30 s
        await names.refresh(["new"])
        assert len(calls) == 2
        now[0] = 31.0
        up = False
        await names.refresh(["new"])
        assert len(calls) == 3 and names.name("new") == "new" and names.name("u2") == "单位2"
        now[0] = 700.0
        await names.refresh()
        assert names.name("u0") == "单位0" and len(calls) == 4  # the old names stay while it is down
