"""Request and response bodies of the notification service's API."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from contracts.base import Frozen

# folded: not sent alone, but in the daily digest named by `digest_id`.
DeliveryStatus = Literal["pending", "sent", "dead", "folded"]


class WebhookIn(Frozen):
    url: str = Field(max_length=500)


class SubscriptionsIn(Frozen):
    """PUT .../subscriptions: the whole list; webhooks already there keep their secrets."""

    emails: list[str] = Field(default=[], max_length=20)
    webhooks: list[WebhookIn] = Field(default=[], max_length=10)


class WebhookOut(Frozen):
    url: str
    # The whole secret once, in the answer to the PUT that created the webhook; masked ever after.
    secret: str
    secret_shown_once: bool


class SubscriptionsOut(Frozen):
    owner: str
    emails: list[str]
    webhooks: list[WebhookOut]


class DeliveryOut(Frozen):
    delivery_id: str
    event_id: str
    event_type: str
    unit_id: str | None
    assignment_id: str | None
    channel: Literal["email", "webhook"]
    recipient: str
    level: str | None
    subject: str
    status: DeliveryStatus
    held_until: dt.datetime | None  # quiet hours: not sent before then
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    digest_id: str | None = None


class RejectOut(Frozen):
    """A message of the event stream the notifier could not read: recorded, then not delivered again."""

    reject_id: str
    stream_seq: int
    subject: str
    event_id: str | None
    reason: str
    body: str  # the start of the message as text
    received_at: dt.datetime
