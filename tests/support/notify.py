"""A real SMTP server (aiosmtpd), a real webhook receiver, and the notifier under uvicorn, for the
notifier's tests."""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import hmac
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response

from deploy.local.servers import free_port
from services.notify.app import create_app
from services.notify.settings import NotifySettings
from services.shared.db import sqlite_url
from tests.e2e.support import serve


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"

    def text(self, msg: Message) -> str:
        part = msg.get_payload(decode=True)
        assert isinstance(part, bytes)
        return part.decode(msg.get_content_charset() or "utf-8")


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@dataclass
class Hit:
    path: str
    delivery: str
    signature: str
    body: bytes
    status: int


@dataclass
class Receiver:
    """Answers POST /<name>: `fail[name]` times 500 first (-1: always), then 200; keeps every request."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)

    def ok(self, path: str | None = None) -> list[Hit]:
        return [h for h in self.hits if h.status == 200 and (path is None or h.path == path)]

    def per_delivery(self, path: str | None = None) -> Counter[str]:
        return Counter(h.delivery for h in self.ok(path))


def valid_signature(secret: str, hit: Hit) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), hit.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, hit.signature)


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = FastAPI()

    @app.post("/{name}")
    async def hook(name: str, request: Request) -> Response:
        left = receiver.fail.get(name, 0)
        status = 500 if left != 0 else 200
        if left > 0:
            receiver.fail[name] = left - 1
        hit = Hit(
            name,
            request.headers.get("x-policyflow-delivery", ""),
            request.headers.get("x-policyflow-signature", ""),
            await request.body(),
            status,
        )
        receiver.hits.append(hit)
        return Response(status_code=status)

    async with serve(app) as url:
        receiver.url = url
        yield receiver


PUBLIC = "https://policyflow.example.gov.cn"


def notify_settings(tmp: Path, nats_url: str, smtp_port: int, **extra: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": sqlite_url(tmp / "notify.sqlite"),
        "var_dir": tmp,
        "key_dir": tmp / "keys",
        "public_base_url": PUBLIC,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "quiet_hours": "",
        "allow_private_urls": True,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "max_attempts": 4,
        "poll_seconds": 0.05,
        # Nothing listens there: the texts name units by id (the fallback when the registry is out of reach).
        "assignment_url": f"http://127.0.0.1:{free_port()}",
    }
    return NotifySettings(**(values | extra))


@asynccontextmanager
async def notifier(settings: NotifySettings, **kwargs: Any) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(settings, **kwargs)
    async with serve(app) as url:
        yield url, app


async def subscribe(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, str]:
    r = await http.put(path, json=body, headers=headers)
    assert r.status_code == 200, r.text
    return {w["url"]: w["secret"] for w in r.json()["webhooks"]}


async def health_position(http: httpx.AsyncClient, seq: int) -> bool:
    r = await http.get("/healthz")
    return r.status_code == 200 and int(r.json()["position"]) >= seq


class Clock:
    """The notifier's clock, set by the test (never today's date)."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at
