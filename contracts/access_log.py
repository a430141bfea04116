"""The access log: one record per request that named a caller or was refused, as every service sends it
to the access stream and the audit service keeps it (`GET /v1/audit/access`).

What a record holds is chosen so that it never carries a secret: the route and the path without the
query string (a sign-in callback's `code` stays out), the caller's subject, role and unit from the
verified token, never the token, a body or a password.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from pydantic import Field

from contracts.base import Frozen
from contracts.ids import parse_assignment_id

ACCESS_STREAM = "POLICYFLOW_ACCESS"
ACCESS_SUBJECT_PREFIX = "pf.access"
ACCESS_SUBJECTS = f"{ACCESS_SUBJECT_PREFIX}.>"
ACCESS_DURABLE = "audit-access-log"


def access_subject(service: str) -> str:
    return f"{ACCESS_SUBJECT_PREFIX}.{service}"


def access_stream_config(replicas: int = 1) -> dict[str, object]:
    """Kept a year and a half (one programme year and its audit), never deleted by hand."""
    return {
        "name": ACCESS_STREAM,
        "subjects": [ACCESS_SUBJECTS],
        "storage": "file",
        "num_replicas": replicas,
        "duplicate_window": 120.0,
        "deny_delete": True,
        "deny_purge": True,
        "max_msg_size": 256 * 1024,
        "max_age": float(550 * 24 * 3600),
    }


class AccessDecided(Frozen):
    """A service decided whether a caller may do what it asked (`allowed`), by the rule `why`."""

    TYPE: ClassVar[str] = "AccessDecided"
    SCHEMA_VERSION: ClassVar[int] = 1
    request_id: str = Field(max_length=64)
    at: dt.datetime
    service: str = Field(max_length=32)
    method: str = Field(max_length=10)
    route: str = Field(max_length=200)  # as declared, e.g. /v1/assignments/{assignment_id}
    path: str = Field(max_length=500)  # without the query string
    status: int
    allowed: bool
    why: str = Field(default="", max_length=500)
    sub: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=32)
    unit_id: str | None = Field(default=None, max_length=100)
    target: str | None = Field(default=None, max_length=200)


class AccessBatch(Frozen):
    """One message of the access stream: the records a service had queued (at most BATCH_MOST), so a
    busy service publishes a message per batch of requests, not per request. Its Nats-Msg-Id is
    `batch_id()`, the same when the same records are sent again."""

    TYPE: ClassVar[str] = "AccessBatch"
    SCHEMA_VERSION: ClassVar[int] = 1
    records: list[AccessDecided] = Field(min_length=1, max_length=100)

    def batch_id(self) -> str:
        return f"{self.records[0].request_id}+{len(self.records)}"


BATCH_MOST = 100  # records of at most ~2 KiB each: well under the stream's largest message


ACCESS_REFUSED = "AccessRefused"


def ledgered(record: AccessDecided) -> bool:
    """Whether a record also goes into the ledger: a refusal to a caller whose token named them. A
    request with no token, or a token that could not be read, has no one to record it of; it stays
    in the access log only, so that anonymous traffic cannot grow the ledger."""
    return not record.allowed and record.sub is not None


def refusal_entry(record: AccessDecided) -> dict[str, object]:
    """A refusal as the ledger keeps it: the envelope of a fact (so that the ledger's columns and
    verification are the same for every entry), of type `AccessRefused`, with the access record as
    its payload. The audit service writes it from the access log; it is never published as an event,
    and belongs to no assignment (`assignment_id` null: replay and history skip it). Its id is the
    request's, so the same record sent twice is one entry."""
    target = parse_assignment_id(record.target or "")
    payload = record.model_dump(mode="json")
    return {
        "event_id": f"access:{record.request_id}",
        "type": ACCESS_REFUSED,
        "schema_version": 1,
        "occurred_at": payload["at"],
        "programme_id": target[0] if target else "",
        "assignment_id": None,
        "task_no": None,
        "unit_id": record.unit_id,
        "actor": {"sub": record.sub, "role": record.role, "unit_id": record.unit_id},
        "seq": 0,
        "payload": payload,
    }


class AccessPage(Frozen):
    """`GET /v1/audit/access`: the newest first."""

    items: list[AccessDecided]
    total: int
    limit: int
    offset: int
