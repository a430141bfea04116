"""The two ways a notice leaves: e-mail over SMTP and a signed webhook POST.

Both carry the delivery id, the same on every attempt: the webhook in `X-Policyflow-Delivery`, the
e-mail as its `Message-ID`, so a receiver can drop a repeat (a crash after a receiver answered
and before the notifier recorded it sends again).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import httpx

from services.notify.addresses import AddressRefused, check_webhook_at_send
from services.notify.settings import NotifySettings

SIGNATURE_HEADER = "X-Policyflow-Signature"
DELIVERY_HEADER = "X-Policyflow-Delivery"


class Permanent(Exception):
    """Sending again would not help (an address refused): the delivery is dead-lettered at once."""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(row: dict[str, Any]) -> bytes:
    """The JSON body, made from the stored row alone so that every attempt signs the same bytes."""
    doc = {
        "delivery_id": row["id"],
        "event_id": row["event_id"],
        "type": row["event_type"],
        "unit_id": row["unit_id"],
        "assignment_id": row["assignment_id"],
        "level": row["level"],
        "subject": row["subject"],
        "text": row["text"],
        "link": row["link"],
        "occurred_at": row["occurred_at"].isoformat(),
    }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def email_message(row: dict[str, Any], sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row["recipient"]
    msg["Subject"] = row["subject"]
    msg["Message-ID"] = f"<{row['id']}@policyflow>"
    msg["Date"] = format_datetime(row["occurred_at"])
    msg["X-Policyflow-Delivery"] = row["id"]
    msg.set_content(row["text"], charset="utf-8")
    return msg


@dataclass
class Channels:
    settings: NotifySettings
    http: httpx.AsyncClient

    async def send(self, row: dict[str, Any], secret: str | None) -> None:
        """Send one delivery; raises on failure (Permanent when retrying is useless)."""
        if row["channel"] == "webhook":
            await self.post(row, secret)
        else:
            await asyncio.wait_for(asyncio.to_thread(self._smtp, row), self.settings.send_timeout + 1)

    async def post(self, row: dict[str, Any], secret: str | None) -> None:
        url = row["recipient"]
        if secret is None:
            raise Permanent("the webhook was removed from the unit's subscriptions")
        try:
            await check_webhook_at_send(url, self.settings.allow_private_urls)
        except AddressRefused as exc:
            raise Permanent(str(exc)) from exc
        body = webhook_body(row)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: signature(secret, body),
            DELIVERY_HEADER: row["id"],
            "User-Agent": "policyflow-notify/1",
        }
        r = await self.http.post(url, content=body, headers=headers, timeout=self.settings.send_timeout)
        if r.status_code >= 300:
            raise RuntimeError(f"webhook answered {r.status_code}")

    def _smtp(self, row: dict[str, Any]) -> None:
        s = self.settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.send_timeout) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password or "")
            smtp.send_message(email_message(row, s.smtp_from))
