"""The notifier against a real nats-server, a real SMTP server (aiosmtpd) and a real webhook receiver:
what arrives, once, with which words and signature; retries, dead letters and a re-send by hand."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import pytest

from contracts.base import Actor, UserRole
from contracts.events import (
    AnnualPlanReturned,
    Deadline,
    SupervisionEscalated,
    VerificationFailed,
    WorkingCalendarPublished,
    make_event,
)
from contracts.working_calendar import calendar_stream
from deploy.local.servers import nats_passwords, nats_server, nats_user_url
from services.shared.streams import ensure_event_stream
from tests.e2e.support import EventFactory, auth
from tests.support.notify import (
    PUBLIC,
    Clock,
    Mailbox,
    Receiver,
    health_position,
    notifier,
    notify_settings,
    subscribe,
    valid_signature,
)
from tests.support.publishing import publish
from tests.support.waiting import until
from workflows.calendar import SHANGHAI, china_year

SUPERVISOR = Actor(sub="sup-1", role=UserRole.SUPERVISOR)
VERIFIER = Actor(sub="ver-1", role=UserRole.VERIFIER)


@pytest.mark.usefixtures("event_stream")
async def test_subscriptions_refuse_bad_addresses_and_show_a_secret_once(
    tmp_path: Path, nats_url: str, parts: tuple[Mailbox, int, Receiver]
) -> None:
    _, port, receiver = parts
    settings = notify_settings(tmp_path, nats_url, port)
    unit = auth(tmp_path / "keys", "department", "yuzhong")
    async with notifier(settings) as (url, _), httpx.AsyncClient(base_url=url) as http:
        r = await http.get("/asyncapi.json")  # the event stream's document, from this service's broker
        assert r.status_code == 200 and r.json()["asyncapi"] == "3.0.0"
        assert "pf.events.{programme}.{unit}.ProgressReported" in r.text
        path = "/v1/units/yuzhong/subscriptions"
        bad = [
            ({"emails": ["not-an-address"]}, "emails.0"),
            ({"webhooks": [{"url": "ftp://example.org/x"}]}, "webhooks.0.url"),
            ({"webhooks": [{"url": "http://169.254.169.254/latest/meta-data"}]}, "webhooks.0.url"),
            ({"webhooks": [{"url": "http://[fe80::1]/hook"}]}, "webhooks.0.url"),
            ({"webhooks": [{"url": "http://metadata.google.internal/"}]}, "webhooks.0.url"),
        ]
        for body, field in bad:
            r = await http.put(path, json=body, headers=unit)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["errors"][0]["field"] == field
            assert "pattern" not in r.text and "Traceback" not in r.text
        # Every bad field at once, so that the person fixes the form in one go.
        both = {"emails": ["a@b.cn", "x"], "webhooks": [{"url": "ftp://example.org/x"}]}
        r = await http.put(path, json=both, headers=unit)
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["emails.1", "webhooks.0.url"]
        hook = f"{receiver.url}/ok"
        r = await http.put(path, json={"emails": ["yz@example.org"], "webhooks": [{"url": hook}]}, headers=unit)
        assert r.status_code == 200, r.text
        first = r.json()["webhooks"][0]
        assert first["secret_shown_once"] and first["secret"].startswith("whsec_") and len(first["secret"]) > 40
        shown = (await http.get(path, headers=unit)).json()["webhooks"][0]
        assert not shown["secret_shown_once"] and shown["secret"] != first["secret"]
        assert shown["secret"].endswith(first["secret"][-4:])
        # A PUT that keeps the webhook keeps its secret and does not show it again.
        r = await http.put(path, json={"emails": [], "webhooks": [{"url": hook}]}, headers=unit)
        assert r.json()["emails"] == [] and r.json()["webhooks"][0]["secret"] == shown["secret"]
        other = auth(tmp_path / "keys", "department", "wanzhou")
        assert (await http.get(path, headers=other)).status_code == 403
        assert (await http.get(path, headers=auth(tmp_path / "keys", "auditor"))).status_code == 403
        assert (await http.get(path, headers=auth(tmp_path / "keys", "supervisor"))).status_code == 200
        assert (await http.get("/v1/notifications/failed", headers=unit)).status_code == 403


@pytest.mark.usefixtures("event_stream")
async def test_returned_plan_red_escalation_and_failed_verification_arrive_once(
    tmp_path: Path, nats_url: str, parts: tuple[Mailbox, int, Receiver]
) -> None:
    box, port, receiver = parts
    keys = tmp_path / "keys"
    settings = notify_settings(tmp_path, nats_url, port)
    f = EventFactory("cq-2022-79", 14, "yuzhong")
    year = 2026
    rework = Deadline(key=f"annual_plan:{year}", kind="annual_plan", due=dt.date(2026, 3, 20), year=year)
    late = Deadline(key=f"annual_plan:{year}", kind="annual_plan", due=dt.date(2026, 2, 2), year=year)
    events = [
        f.created(),
        f.next(AnnualPlanReturned(year=year, revision=1, reasons="指标缺少基线数据", opens=[rework]), SUPERVISOR),
        f.next(SupervisionEscalated(deadline=late, level="red", working_days_overdue=25)),
        f.next(VerificationFailed(year=year, findings="佐证材料不足", rework_due=dt.date(2026, 3, 31)), VERIFIER),
    ]
    async with notifier(settings) as (url, _), httpx.AsyncClient(base_url=url) as http:
        hook = f"{receiver.url}/unit"
        secret = (await subscribe(http, "/v1/units/yuzhong/subscriptions", auth(keys, "department", "yuzhong"),
                                  {"emails": ["yz@example.org"], "webhooks": [{"url": hook}]}))[hook]  # fmt: skip
        sup = auth(keys, "supervisor")
        await subscribe(http, "/v1/supervisors/subscriptions", sup, {"emails": ["duban@example.org"]})
        for office in ("yuzhong", "wanzhou"):  # the districts' 督查室, each told of its own district only
            scoped = auth(keys, "supervisor", supervises=(f"unit:{office}",))
            await subscribe(http, "/v1/supervisors/subscriptions", scoped, {"emails": [f"dcs-{office}@example.org"]})
            mine = (await http.get("/v1/supervisors/subscriptions", headers=scoped)).json()
            assert mine["emails"] == [f"dcs-{office}@example.org"], mine
        last = await publish(nats_url, events)
        await until(lambda: len(receiver.ok()) >= 4 and len(box.messages) >= 6, "four webhooks and six e-mails")
        by_type = {json.loads(h.body)["type"]: h for h in receiver.ok()}
        assert set(by_type) == {"AssignmentCreated", "AnnualPlanReturned", "SupervisionEscalated", "VerificationFailed"}
        for hit in receiver.ok():
            assert valid_signature(secret, hit)
            doc = json.loads(hit.body)
            assert doc["delivery_id"] == hit.delivery
            assert "task 14" in doc["text"] and "yuzhong" in doc["text"]
            assert f"{PUBLIC}/workbench/assignments/{f.assignment_id}" in doc["text"]
        returned = json.loads(by_type["AnnualPlanReturned"].body)["text"]
        assert "退回理由：指标缺少基线数据" in returned
        assert "2026年3月20日前（还有" in returned and "个工作日" in returned
        red = json.loads(by_type["SupervisionEscalated"].body)
        assert red["level"] == "red" and "红色督办" in red["text"] and "已逾期25个工作日" in red["text"]
        failed = json.loads(by_type["VerificationFailed"].body)["text"]
        assert "核验未通过" in failed and "核验意见：佐证材料不足" in failed and "整改" in failed
        # E-mail: the unit gets all four, the supervisors the red one; Message-ID is the delivery id.
        to = sorted((m["To"], str(m["Subject"])) for m in box.messages)
        assert [t for t, _ in to].count("yz@example.org") == 4 and [t for t, _ in to].count("duban@example.org") == 1
        assert [t for t, _ in to].count("dcs-yuzhong@example.org") == 1
        assert "dcs-wanzhou@example.org" not in [t for t, _ in to]
        sup_mail = next(m for m in box.messages if m["To"] == "duban@example.org")
        assert "红色督办" in str(email_subject(sup_mail)) and "已逾期25个工作日" in box.text(sup_mail)
        ids = {m["Message-ID"].strip("<>").split("@")[0] for m in box.messages}

        async def all_recorded_sent() -> bool:
            # A receiver has the message a moment before the sender records it as sent.
            page = (await http.get("/v1/units/yuzhong/notifications", headers=sup)).json()
            return page["total"] == 8 and all(d["status"] == "sent" for d in page["items"])

        await until(all_recorded_sent, "every delivery recorded as sent")
        rows = (await http.get("/v1/units/yuzhong/notifications", headers=sup)).json()["items"]
        assert {d["delivery_id"] for d in rows if d["channel"] == "email"} <= ids
        assert all(d["attempts"] == 1 for d in rows)
        # The same events again (a redelivery, or a retried publish kept twice): nothing new is sent.
        again = await publish(nats_url, events, msg_id_suffix="-again")
        assert again > last
        await until(lambda: health_position(http, again), "the notifier past the repeated events")
        assert (await http.get("/v1/units/yuzhong/notifications", headers=sup)).json()["total"] == 8
        assert len(receiver.hits) == 4 and len(box.messages) == 6
        unit_view = await http.get("/v1/units/yuzhong/notifications", headers=auth(keys, "department", "yuzhong"))
        assert unit_view.status_code == 200 and unit_view.json()["total"] == 8


def email_subject(msg: Any) -> str:
    from email.header import decode_header, make_header

    return str(make_header(decode_header(msg["Subject"])))


@pytest.mark.usefixtures("event_stream")
async def test_retries_then_delivered_and_dead_letter_resent_by_hand(
    tmp_path: Path, nats_url: str, parts: tuple[Mailbox, int, Receiver]
) -> None:
    _, port, receiver = parts
    keys = tmp_path / "keys"
    receiver.fail = {"flaky": 3, "down": -1}
    settings = notify_settings(tmp_path, nats_url, port)
    f = EventFactory("cq-2022-79", 3, "wanzhou")
    async with notifier(settings) as (url, _), httpx.AsyncClient(base_url=url) as http:
        hooks = [f"{receiver.url}/flaky", f"{receiver.url}/down"]
        await subscribe(http, "/v1/units/wanzhou/subscriptions", auth(keys, "department", "wanzhou"),
                        {"webhooks": [{"url": h} for h in hooks]})  # fmt: skip
        await publish(nats_url, [f.escalated("yellow")])
        sup = auth(keys, "supervisor")

        async def dead() -> list[dict[str, Any]]:
            return list((await http.get("/v1/notifications/failed", headers=sup)).json()["items"])

        await until(lambda: receiver.ok("flaky"), "the flaky receiver's 200")
        letters = await until(dead, "the always-failing webhook dead-lettered")
        flaky = [h for h in receiver.hits if h.path == "flaky"]
        assert [h.status for h in flaky] == [500, 500, 500, 200]
        assert len({h.delivery for h in flaky}) == 1 and len({h.body for h in flaky}) == 1  # same id, same bytes
        rows = (await http.get("/v1/units/wanzhou/notifications", headers=sup)).json()["items"]
        sent = next(d for d in rows if d["recipient"].endswith("/flaky"))
        assert sent["status"] == "sent" and sent["attempts"] == 4 and sent["delivery_id"] == flaky[0].delivery
        [letter] = letters
        assert letter["recipient"].endswith("/down") and letter["attempts"] == 4
        assert letter["last_error"] == "webhook answered 500"
        assert len([h for h in receiver.hits if h.path == "down"]) == 4
        assert (await http.post(f"/v1/notifications/{sent['delivery_id']}/retry", headers=sup)).status_code == 409
        assert (await http.post("/v1/notifications/nope/retry", headers=sup)).status_code == 404
        receiver.fail["down"] = 2  # the re-send fails twice more: back on the retry schedule, not dead at once
        r = await http.post(f"/v1/notifications/{letter['delivery_id']}/retry", headers=sup)
        assert r.status_code == 200 and r.json()["status"] == "pending"
        await until(lambda: receiver.ok("down"), "the re-sent dead letter")
        assert [h.status for h in receiver.hits if h.path == "down"] == [500] * 6 + [200]
        assert {h.delivery for h in receiver.hits if h.path == "down"} == {letter["delivery_id"]}
        assert await dead() == []
        assert receiver.per_delivery() == {flaky[0].delivery: 1, letter["delivery_id"]: 1}


@pytest.mark.usefixtures("event_stream")
async def test_quiet_hours_hold_a_red_escalation_until_the_next_working_morning(
    tmp_path: Path, nats_url: str, parts: tuple[Mailbox, int, Receiver]
) -> None:
    _, port, receiver = parts
    keys = tmp_path / "keys"
    clock = Clock(dt.datetime(2026, 1, 10, 23, 0, tzinfo=SHANGHAI))  # a Saturday, 23:00 Beijing time
    settings = notify_settings(tmp_path, nats_url, port, quiet_hours="22:00-07:30")
    saturday, before_tiaoxiu = EventFactory("cq-2022-79", 1, "yuzhong"), EventFactory("cq-2022-79", 2, "yuzhong")
    async with notifier(settings, clock=clock) as (url, app), httpx.AsyncClient(base_url=url) as http:
        await subscribe(http, "/v1/units/yuzhong/subscriptions", auth(keys, "department", "yuzhong"),
                        {"webhooks": [{"url": f"{receiver.url}/unit"}]})  # fmt: skip
        sup = auth(keys, "supervisor")
        seq = await publish(nats_url, [saturday.escalated("red")])
        await until(lambda: health_position(http, seq), "the Saturday escalation recorded")
        clock.at = dt.datetime(2026, 1, 3, 23, 0, tzinfo=SHANGHAI)  # the Saturday before the 调休 Sunday 2026-01-04
        seq = await publish(nats_url, [before_tiaoxiu.escalated("red")])
        await until(lambda: health_position(http, seq), "the second escalation recorded")
        rows = (await http.get("/v1/units/yuzhong/notifications", headers=sup)).json()["items"]
        held = {d["assignment_id"]: dt.datetime.fromisoformat(d["held_until"]) for d in rows}
        assert held == {
            saturday.assignment_id: dt.datetime(2026, 1, 12, 7, 30, tzinfo=SHANGHAI),  # Monday
            before_tiaoxiu.assignment_id: dt.datetime(2026, 1, 4, 7, 30, tzinfo=SHANGHAI),  # the 调休 Sunday
        }
        sender = app.state.sender
        clock.at = dt.datetime(2026, 1, 4, 7, 29, tzinfo=SHANGHAI)
        assert await sender.send_due() == 0 and receiver.hits == []
        clock.at = dt.datetime(2026, 1, 4, 7, 30, tzinfo=SHANGHAI)
        await until(lambda: len(receiver.ok()) == 1, "the 调休 Sunday's one at 07:30")
        assert json.loads(receiver.ok()[0].body)["assignment_id"] == before_tiaoxiu.assignment_id
        clock.at = dt.datetime(2026, 1, 12, 7, 29, 59, tzinfo=SHANGHAI)
        assert await sender.send_due() == 0 and len(receiver.hits) == 1
        clock.at = dt.datetime(2026, 1, 12, 7, 30, tzinfo=SHANGHAI)
        await until(lambda: len(receiver.ok()) == 2, "Monday's one at 07:30")
        assert receiver.per_delivery() == {h.delivery: 1 for h in receiver.ok()}


@pytest.mark.usefixtures("event_stream")
async def test_quiet_hours_on_a_published_holiday_hold_until_the_published_working_morning(
    tmp_path: Path, nats_url: str, parts: tuple[Mailbox, int, Receiver]
) -> None:
    """A Friday published as a holiday and the Sunday after it as a working day (调休): an escalation
    made on the Thursday night, and one on the Friday itself, go out at 07:30 on that Sunday."""
    _, port, receiver = parts
    keys = tmp_path / "keys"
    year = 2030
    package = china_year(year)
    friday = next(d for d in (dt.date(year, 3, 1) + dt.timedelta(days=i) for i in range(31))
                  if d.weekday() == 4 and d not in package.days_off)  # fmt: skip
    sunday = friday + dt.timedelta(days=2)
    fact = WorkingCalendarPublished(
        year=year, revision=1, holidays=[*package.days_off, friday], workdays=[*package.make_up_workdays, sunday],
        source=f"国办发明电〔{year - 1}〕8号",
    )  # fmt: skip
    calendar = make_event(fact, seq=0, occurred_at=dt.datetime(year - 1, 11, 1, tzinfo=dt.UTC),
                          programme_id=calendar_stream(year), actor=SUPERVISOR)  # fmt: skip
    clock = Clock(dt.datetime.combine(friday - dt.timedelta(days=1), dt.time(23, 0), tzinfo=SHANGHAI))
    settings = notify_settings(tmp_path, nats_url, port, quiet_hours="22:00-07:30")
    night, holiday = EventFactory("cq-2022-79", 1, "yuzhong"), EventFactory("cq-2022-79", 2, "yuzhong")
    async with notifier(settings, clock=clock) as (url, app), httpx.AsyncClient(base_url=url) as http:
        await subscribe(http, "/v1/units/yuzhong/subscriptions", auth(keys, "department", "yuzhong"),
                        {"webhooks": [{"url": f"{receiver.url}/unit"}]})  # fmt: skip
        seq = await publish(nats_url, [calendar, night.escalated("red", year)])
        await until(lambda: health_position(http, seq), "the calendar and the Thursday night's escalation recorded")
        clock.at = dt.datetime.combine(friday, dt.time(10, 0), tzinfo=SHANGHAI)
        seq = await publish(nats_url, [holiday.escalated("red", year)])
        await until(lambda: health_position(http, seq), "the holiday's escalation recorded")
        rows = (await http.get("/v1/units/yuzhong/notifications", headers=auth(keys, "supervisor"))).json()["items"]
        morning = dt.datetime.combine(sunday, dt.time(7, 30), tzinfo=SHANGHAI)
        held = {d["assignment_id"]: dt.datetime.fromisoformat(d["held_until"]) for d in rows}
        assert held == {night.assignment_id: morning, holiday.assignment_id: morning}
        sender = app.state.sender
        clock.at = morning - dt.timedelta(seconds=1)
        assert await sender.send_due() == 0 and receiver.hits == []
        clock.at = morning
        await until(lambda: len(receiver.ok()) == 2, "both at 07:30 on the published working Sunday")
        assert receiver.per_delivery() == {h.delivery: 1 for h in receiver.ok()}


async def test_the_notifier_works_as_its_own_nats_user(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, parts: tuple[Mailbox, int, Receiver]
) -> None:
    """deploy/nats/authorization.conf's `notify` user may read the stream with its durable, and publish nothing."""
    box, port, _ = parts
    state = tmp_path_factory.mktemp("nats-notify-auth")
    server = nats_server(state, auth=True).start()
    try:
        passwords = nats_passwords(state)
        admin = await nats.connect(nats_user_url(server.port, "admin", passwords))
        await ensure_event_stream(admin.jetstream())
        user_url = nats_user_url(server.port, "notify", passwords)
        settings = notify_settings(tmp_path, user_url, port)
        keys = tmp_path / "keys"
        async with notifier(settings) as (url, _), httpx.AsyncClient(base_url=url) as http:
            await subscribe(http, "/v1/units/yuzhong/subscriptions", auth(keys, "department", "yuzhong"),
                            {"emails": ["yz@example.org"]})  # fmt: skip
            await publish(admin.jetstream(), [EventFactory("cq-2022-79", 5, "yuzhong").escalated("blue")])
            await until(lambda: len(box.messages) == 1, "the e-mail, read as the notify user")
        notify_nc = await nats.connect(user_url)
        with pytest.raises(nats.errors.Error):
            await notify_nc.jetstream().publish("pf.events.x.y.SupervisionEscalated", b"{}", timeout=2)
        await notify_nc.close()
        await admin.close()
    finally:
        server.stop()
