"""Assignment service settings, read from the environment when the service starts (never at import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from contracts.subjects import EVENT_STREAM, INBOX_DURABLE, TASK_QUEUE
from services.shared.db import sqlite_url
from services.shared.temporal_connect import TemporalConnectionSettings


class AssignmentSettings(TemporalConnectionSettings):
    """TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_TLS_* come from TemporalConnectionSettings."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("HOST"))
    port: int = Field(default=8101, validation_alias=AliasChoices("ASSIGNMENT_PORT"))
    nats_url: str = Field(default="nats://127.0.0.1:4333", validation_alias=AliasChoices("NATS_URL"))
    # Copies of the event stream if this service creates it (3 on a 3-node NATS cluster).
    nats_replicas: int = Field(default=1, ge=1, le=5, validation_alias=AliasChoices("NATS_REPLICAS"))
    task_queue: str = Field(default=TASK_QUEUE, validation_alias=AliasChoices("TASK_QUEUE"))
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ASSIGNMENT_DATABASE_URL", "DATABASE_URL")
    )
    var_dir: Path = Field(default=Path("var"), validation_alias=AliasChoices("POLICYFLOW_VAR"))
    key_dir: Path | None = Field(default=None, validation_alias=AliasChoices("POLICYFLOW_KEY_DIR"))
    event_stream: str = Field(default=EVENT_STREAM, validation_alias=AliasChoices("EVENT_STREAM"))
    inbox_durable: str = Field(default=INBOX_DURABLE, validation_alias=AliasChoices("INBOX_DURABLE"))
    inbox_batch: int = Field(default=256, ge=1, le=5000, validation_alias=AliasChoices("INBOX_BATCH"))
    # How long a short batch of events waits for more before it is applied (one transaction for a burst).
    inbox_linger_ms: float = Field(default=50.0, ge=0, le=5000, validation_alias=AliasChoices("INBOX_LINGER_MS"))
    # Workflow starts in flight at once during a dispatch: fast for ~1,300, gentle on the server.
    dispatch_concurrency: int = Field(default=64, ge=1, le=1000, validation_alias=AliasChoices("DISPATCH_CONCURRENCY"))
    # Whether workflows keep the Policyflow* search attributes (the server must have them registered).
    search_attributes: bool = Field(default=True, validation_alias=AliasChoices("SEARCH_ATTRIBUTES"))
    # A revision whose workflows to follow are more than this answers 202 at once (its progress: GET .../revisions/N).
    revision_wait_limit: int = Field(default=200, ge=0, validation_alias=AliasChoices("REVISION_WAIT_LIMIT"))
    update_timeout: float = Field(default=30.0, gt=0, validation_alias=AliasChoices("UPDATE_TIMEOUT_SECONDS"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL"))

    def db_url(self) -> str:
        return self.database_url or sqlite_url(self.var_dir / "assignment.sqlite")

    def keys(self) -> Path:
        return self.key_dir or self.var_dir / "keys"
