"""NATS subject and stream names. Subject tokens never contain '.', so ids stay tokens."""

from __future__ import annotations

EVENT_STREAM = "POLICYFLOW_EVENTS"
EVENT_SUBJECT_PREFIX = "pf.events"
EVENT_SUBJECTS = f"{EVENT_SUBJECT_PREFIX}.>"
AUDIT_DURABLE = "audit-ledger"
READ_MODEL_DURABLE = "progress-read-models"
TASK_QUEUE = "policyflow-assignments"
# Longer than the publishing activity's whole retry span (see workflows), so a retried
# publish is always recognised as a duplicate.
DUPLICATE_WINDOW_SECONDS = 24 * 3600


def _token(value: str | None) -> str:
    return (value or "_").replace(".", "_").replace("*", "_").replace(">", "_") or "_"


def event_subject(programme_id: str, unit_id: str | None, event_type: str) -> str:
    """`pf.events.<programme>.<unit>.<Type>`: filterable by programme, unit and type."""
    return f"{EVENT_SUBJECT_PREFIX}.{_token(programme_id)}.{_token(unit_id)}.{event_type}"


STREAM_MAX_BYTES = 8 * 1024**3


def event_stream_config(replicas: int = 1, max_bytes: int = STREAM_MAX_BYTES) -> dict[str, object]:
    """Keyword arguments for `js.add_stream`: durable, no deletes or purges, bounded messages."""
    return {
        "name": EVENT_STREAM,
        "subjects": [EVENT_SUBJECTS],
        "storage": "file",
        "num_replicas": replicas,
        "duplicate_window": float(DUPLICATE_WINDOW_SECONDS),
        "deny_delete": True,
        "deny_purge": True,
        "max_msg_size": 256 * 1024,
        "max_bytes": max_bytes,
    }


INBOX_DURABLE = "assignment-inbox"
NOTIFY_DURABLE = "notify-deliveries"
