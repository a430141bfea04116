"""A real SMTP server (aiosmtpd) and a real webhook receiver for the notifier's tests."""

from __future__ import annotations

import email
import hashlib
import hmac
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response

from deploy.local.servers import free_port
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
