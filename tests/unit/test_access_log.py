"""The access log's sending side: the record a request leaves (no query string, no token), and a queue
that keeps what NATS did not acknowledge."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
from fastapi import Depends, FastAPI

from contracts.access_log import AccessBatch
from contracts.base import UserRole
from services.shared import access_log
from services.shared.auth import Principal, issue_token, load_public_key
from services.shared.background_nats import BackgroundNats
from services.shared.web import principal, require_role


def app_with(sink: access_log.AccessLog, key_dir: Any) -> FastAPI:
    app = FastAPI()
    app.state.public_key = load_public_key(key_dir)
    app.state.access_log = sink

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str, p: Principal = Depends(principal)) -> dict[str, str]:
        require_role(p, UserRole.AUDITOR)
        return {"thing": thing_id}

    access_log.install(app, "things")
    return app


async def test_a_request_leaves_who_what_and_why_and_no_secret(tmp_path: Any) -> None:
    sink = access_log.AccessLog(
        "things", BackgroundNats("nats://127.0.0.1:1", "unused")
    )  # never started: records stay queued
    app = app_with(sink, tmp_path)
    token = issue_token(tmp_path, UserRole.DEPARTMENT, "yuzhong", sub="王科长")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/v1/things/a1", params={"code": "s3cret"}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
        assert (await c.get("/v1/things/a2")).status_code == 401
        assert (await c.get("/openapi.json")).status_code == 200  # nobody named, nothing refused: not logged
    refused, anonymous = list(sink.queue)
    assert (refused.sub, refused.role, refused.unit_id, refused.status, refused.allowed) == (
        "王科长", "department", "yuzhong", 403, False)  # fmt: skip
    assert (refused.route, refused.path, refused.service) == ("/v1/things/{thing_id}", "/v1/things/a1", "things")
    assert "needs auditor" in refused.why
    assert (anonymous.sub, anonymous.status, anonymous.why) == (None, 401, "no token")
    text = "".join(r.model_dump_json() for r in sink.queue)
    assert "s3cret" not in text and token not in text


class FlakyJetStream:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[str] = []
        self.records = 0
        self.subjects: set[str] = set()

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        self.subjects.add(subject)
        batch = AccessBatch.model_validate_json(data)
        assert batch.batch_id() == headers["Nats-Msg-Id"]
        if self.failures:
            self.failures -= 1
            raise TimeoutError("nats: timeout")
        self.sent.append(headers["Nats-Msg-Id"])
        self.records += len(batch.records)


class FakeConnection:
    def __init__(self, js: FlakyJetStream) -> None:
        self.js = js

    def jetstream(self) -> FlakyJetStream:
        return self.js


async def test_what_nats_did_not_acknowledge_stays_queued(tmp_path: Any) -> None:
    sink = access_log.AccessLog("things", BackgroundNats("nats://127.0.0.1:1", "unused"))
    app = app_with(sink, tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for n in range(3):
            await c.get(f"/v1/things/{n}")
    js = FlakyJetStream(failures=1)
    with contextlib.suppress(TimeoutError):
        await sink._publish_all(FakeConnection(js))  # type: ignore[arg-type]
    assert len(sink.queue) == 3
    await sink._publish_all(FakeConnection(js))  # type: ignore[arg-type]
    # The three records went as one message, sent again under the same Nats-Msg-Id after the failure
    # (had the first reached the stream, the stream would drop the second as a duplicate).
    assert not sink.queue and len(js.sent) == 1 and js.records == 3 and js.subjects == {"pf.access.things"}
