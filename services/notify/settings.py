"""Notification service settings, read from the environment when the service starts (never at import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.subjects import EVENT_STREAM, NOTIFY_DURABLE
from services.shared.db import sqlite_url


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("NOTIFY_HOST", "HOST"))
    port: int = Field(default=8104, ge=1, le=65535, validation_alias=AliasChoices("NOTIFY_PORT"))
    nats_url: str = Field(default="nats://127.0.0.1:4333", validation_alias=AliasChoices("NATS_URL"))
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("NOTIFY_DATABASE_URL", "DATABASE_URL"))
    var_dir: Path = Field(default=Path("var"), validation_alias=AliasChoices("POLICYFLOW_VAR"))
    key_dir: Path | None = Field(default=None, validation_alias=AliasChoices("POLICYFLOW_KEY_DIR"))
    event_stream: str = Field(default=EVENT_STREAM, validation_alias=AliasChoices("EVENT_STREAM"))
    durable: str = Field(default=NOTIFY_DURABLE, validation_alias=AliasChoices("NOTIFY_DURABLE"))
    # Links in messages: the workbench as people reach it, never the bind address unless it is that.
    public_base_url: str = Field(default="http://127.0.0.1:8102", validation_alias=AliasChoices("PUBLIC_BASE_URL"))
    # The public unit registry (GET /v1/units) whose names the texts use; the unit id when unreachable.
    assignment_url: str = Field(
        default="http://127.0.0.1:8101", validation_alias=AliasChoices("POLICYFLOW_ASSIGNMENT_URL")
    )
    unit_names_ttl: float = Field(default=600.0, gt=0, validation_alias=AliasChoices("NOTIFY_UNIT_NAMES_TTL_SECONDS"))
    smtp_host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("SMTP_HOST"))
    smtp_port: int = Field(default=8025, ge=1, le=65535, validation_alias=AliasChoices("SMTP_PORT"))
    smtp_from: str = Field(default="policyflow@localhost", validation_alias=AliasChoices("SMTP_FROM"))
    smtp_starttls: bool = Field(default=False, validation_alias=AliasChoices("SMTP_STARTTLS"))
    smtp_user: str | None = Field(default=None, validation_alias=AliasChoices("SMTP_USER"))
    smtp_password: str | None = Field(default=None, validation_alias=AliasChoices("SMTP_PASSWORD"))
    # `HH:MM-HH:MM` Beijing time, the night on working days; non-working days are quiet all day. Empty: off.
    quiet_hours: str = Field(default="22:00-07:30", validation_alias=AliasChoices("NOTIFY_QUIET_HOURS"))
    # More notices than this to one address on one channel in one Beijing day: the rest go in a digest
    # the next working morning (red escalations never). 0 turns the digest off.
    digest_threshold: int = Field(default=5, ge=0, le=1000, validation_alias=AliasChoices("NOTIFY_DIGEST_THRESHOLD"))
    # Loopback and private webhook addresses (tests, the embedded default); link-local and metadata never.
    allow_private_urls: bool = Field(default=False, validation_alias=AliasChoices("NOTIFY_ALLOW_PRIVATE_URLS"))
    max_attempts: int = Field(default=8, ge=1, le=100, validation_alias=AliasChoices("NOTIFY_MAX_ATTEMPTS"))
    # Backoff: base * 2**(attempt-1), capped; 8 attempts at 5 s span about ten minutes.
    retry_base_seconds: float = Field(default=5.0, gt=0, validation_alias=AliasChoices("NOTIFY_RETRY_BASE_SECONDS"))
    retry_max_seconds: float = Field(default=600.0, gt=0, validation_alias=AliasChoices("NOTIFY_RETRY_MAX_SECONDS"))
    send_timeout: float = Field(default=10.0, gt=0, validation_alias=AliasChoices("NOTIFY_SEND_TIMEOUT_SECONDS"))
    concurrency: int = Field(default=64, ge=1, le=1000, validation_alias=AliasChoices("NOTIFY_CONCURRENCY"))
    batch_size: int = Field(default=128, ge=1, le=5000, validation_alias=AliasChoices("NOTIFY_BATCH"))
    poll_seconds: float = Field(default=1.0, gt=0, validation_alias=AliasChoices("NOTIFY_POLL_SECONDS"))
    # A notifier not holding the lease (another one consumes and sends) tries to take it this often.
    lease_retry_seconds: float = Field(default=1.0, gt=0, validation_alias=AliasChoices("NOTIFY_LEASE_RETRY_SECONDS"))
    ack_wait: float = Field(default=30.0, gt=0, validation_alias=AliasChoices("NOTIFY_ACK_WAIT_SECONDS"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("NOTIFY_LOG_LEVEL", "LOG_LEVEL"))
    # The embedded SMTP sink of `make up` (services.notify.sink) keeps each message under this directory.
    mail_dir: Path | None = Field(default=None, validation_alias=AliasChoices("NOTIFY_MAIL_DIR"))

    def db_url(self) -> str:
        return self.database_url or sqlite_url(self.var_dir / "notify.sqlite")

    def keys(self) -> Path:
        return self.key_dir or self.var_dir / "keys"

    def mail_path(self) -> Path:
        return self.mail_dir or self.var_dir / "mail"
