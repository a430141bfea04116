"""Messages the notifier cannot read: not JSON, not an event envelope, an unknown fact type, or a
payload that does not match its type. Left un-acked such a message would come back after every
ack wait, for ever, and hold a place in the consumer's window; instead it is recorded (supervisors
see it at GET /v1/notifications/rejects) with the position moved past it, and terminated.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from faststream import BaseMiddleware
from pydantic import ValidationError

from contracts.events import FACT_TYPES, Event

log = structlog.get_logger("notify.poison")
Reject = Callable[[int, str, bytes, str, str | None], Awaitable[None]]


class Unreadable(Exception):
    """An event envelope whose fact cannot be read; the message says why in plain words."""

    def __init__(self, reason: str, event_id: str | None) -> None:
        super().__init__(reason)
        self.reason, self.event_id = reason, event_id


def _fields(exc: ValidationError) -> str:
    names = sorted({".".join(str(p) for p in e["loc"]) or "(the whole message)" for e in exc.errors()})
    return ", ".join(names[:8])


def check_fact(event: Event) -> None:
    """Raise Unreadable unless the event's type is known and its payload reads as that type."""
    if event.type not in FACT_TYPES:
        raise Unreadable(f"未知的事件类型“{event.type[:64]}” (unknown event type)", event.event_id)
    try:
        event.fact()
    except ValidationError as exc:
        raise Unreadable(
            f"{event.type} 事件的内容与其类型不符，字段：{_fields(exc)} (the payload does not match its type)",
            event.event_id,
        ) from None
    except (KeyError, ValueError, TypeError) as exc:  # an upcaster meeting a schema version it does not know
        raise Unreadable(
            f"{event.type} 事件的版本 {event.schema_version} 无法读取 (cannot read this version): {exc}"[:300],
            event.event_id,
        ) from None


def why_unreadable(body: bytes, exc: ValidationError) -> tuple[str, str | None]:
    """Plain words for a body that did not validate as an event envelope, and its event id if any."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "消息不是有效的 JSON (not valid JSON)", None
    event_id = doc.get("event_id") if isinstance(doc, dict) else None
    if not isinstance(doc, dict):
        return "消息不是事件对象 (not an event: the message is not a JSON object)", None
    return (
        f"消息不是有效的事件，缺少或错误的字段：{_fields(exc)} (not an event)",
        str(event_id)[:200] if event_id is not None else None,
    )


def poison_guard(reject: Reject, seq_of: Callable[[Any], int]) -> Callable[..., BaseMiddleware]:
    """A FastStream middleware: a message whose body fails to validate as an Event (or whose fact
    is unreadable) is recorded by `reject(seq, subject, body, reason, event_id)` and terminated."""

    class PoisonGuard(BaseMiddleware):
        async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
            try:
                return await call_next(msg)
            except (ValidationError, Unreadable) as exc:
                body = bytes(msg.body or b"")
                if isinstance(exc, Unreadable):
                    reason, event_id = exc.reason, exc.event_id
                else:
                    reason, event_id = why_unreadable(body, exc)
                raw = msg.raw_message
                seq = seq_of(raw)
                try:
                    await reject(seq, str(getattr(raw, "subject", "")), body, reason, event_id)
                except Exception:
                    log.exception("notify.reject_not_recorded", seq=seq)
                    with contextlib.suppress(Exception):
                        await msg.nack(delay=1.0)
                    return None
                log.warning("notify.message_rejected", seq=seq, reason=reason, event_id=event_id)
                await msg.reject()  # terminated: the server does not deliver it again
                return None

    return PoisonGuard
