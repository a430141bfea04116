"""A red escalation decided by the real AssignmentWorkflow on the time-skipping server, published by
the worker's activity to the real stream, delivered once by the notifier by e-mail and webhook,
naming the unit as the real assignment service's public registry does."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from services.assignment.app import create_app as assignment_app
from services.assignment.settings import AssignmentSettings
from services.shared.db import sqlite_url
from tests.e2e.support import auth, serve, small_programme
from tests.integration.conftest import Kit, make_spec
from tests.integration.test_workflow_deadlines import add
from tests.support.notify import notifier, notify_settings, smtp_server, subscribe, valid_signature, webhook_receiver
from tests.support.waiting import until


async def test_a_red_escalation_from_the_workflow_arrives_once_by_email_and_webhook(
    kit: Kit, tmp_path: Path, nats_url: str, temporal_address: str
) -> None:
    keys = tmp_path / "keys"
    sup = auth(keys, "supervisor")
    a_settings = AssignmentSettings(
        # The assignment service serves the unit registry; it needs a full server (the dev server) to start.
        nats_url=nats_url, temporal_address=temporal_address,
        task_queue=kit.task_queue, key_dir=keys, var_dir=tmp_path,
        database_url=sqlite_url(tmp_path / "assignment.sqlite"),
    )  # fmt: skip
    with smtp_server() as (box, smtp_port):
        async with webhook_receiver() as receiver, serve(assignment_app(a_settings)) as a_url:
            async with httpx.AsyncClient() as http:
                body = small_programme().model_dump(mode="json")
                r = await http.post(f"{a_url}/v1/programmes", json=body, headers=auth(keys, "admin"))
                assert r.status_code == 200, r.text
            settings = notify_settings(tmp_path, nats_url, smtp_port, assignment_url=a_url, digest_threshold=0)
            async with notifier(settings) as (url, _), httpx.AsyncClient(base_url=url) as http:
                hook = f"{receiver.url}/unit"
                secret = (await subscribe(http, "/v1/units/yuzhong/subscriptions", auth(keys, "department", "yuzhong"),
                          {"emails": ["yz@example.org"], "webhooks": [{"url": hook}]}))[hook]  # fmt: skip
                await subscribe(http, "/v1/supervisors/subscriptions", sup, {"emails": ["duban@example.org"]})
                created = await kit.today()
                spec = make_spec("yuzhong", created.year, created.year + 1)
                await kit.start(spec)
                await kit.sleep_until(add(add(created, 10), 21))  # the acceptance deadline, 20 working days late

                def reds() -> list[dict[str, object]]:
                    return [d for h in receiver.ok() if (d := json.loads(h.body))["level"] == "red"]

                await until(lambda: reds() and len(box.messages) >= 6, "the red escalation by webhook and e-mail")
                [red] = reds()
                hit = next(h for h in receiver.ok() if h.delivery == red["delivery_id"])
                assert valid_signature(secret, hit) and red["assignment_id"] == spec.assignment_id
                words = str(red["text"])
                assert "红色督办" in words and "渝中区" in words and "yuzhong：" not in words
                mails = [m for m in box.messages if "红色督办" in box.text(m)]
                assert sorted(m["To"] for m in mails) == ["duban@example.org", "yz@example.org"]

                async def settled() -> bool:
                    page = (await http.get("/v1/notifications", params={"limit": 100}, headers=sup)).json()
                    return bool(page["total"]) and all(d["status"] == "sent" for d in page["items"])

                await until(settled, "every delivery recorded as sent")
            assert set(receiver.per_delivery().values()) == {1}
            assert len({m["Message-ID"] for m in box.messages}) == len(box.messages)
