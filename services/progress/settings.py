"""Progress service settings, read from the environment when the service starts (never at import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from contracts.subjects import EVENT_STREAM, READ_MODEL_DURABLE, TASK_QUEUE
from services.shared.db import sqlite_url
from services.shared.projection import STATES_KEPT
from services.shared.temporal_connect import TemporalConnectionSettings


class ProgressSettings(TemporalConnectionSettings):
    """TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_TLS_* come from TemporalConnectionSettings."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("HOST"))
    port: int = Field(default=8102, validation_alias=AliasChoices("PROGRESS_PORT"))
    nats_url: str = Field(default="nats://127.0.0.1:4333", validation_alias=AliasChoices("NATS_URL"))
    task_queue: str = Field(default=TASK_QUEUE, validation_alias=AliasChoices("TASK_QUEUE"))
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PROGRESS_DATABASE_URL", "DATABASE_URL")
    )
    var_dir: Path = Field(default=Path("var"), validation_alias=AliasChoices("POLICYFLOW_VAR"))
    key_dir: Path | None = Field(default=None, validation_alias=AliasChoices("POLICYFLOW_KEY_DIR"))
    # The group filter of /v1/status asks the assignment service which tasks form a group.
    assignment_url: str = Field(
        default="http://127.0.0.1:8101", validation_alias=AliasChoices("POLICYFLOW_ASSIGNMENT_URL")
    )
    event_stream: str = Field(default=EVENT_STREAM, validation_alias=AliasChoices("EVENT_STREAM"))
    read_model_durable: str = Field(default=READ_MODEL_DURABLE, validation_alias=AliasChoices("READ_MODEL_DURABLE"))
    read_model_batch: int = Field(default=256, ge=1, le=5000, validation_alias=AliasChoices("READ_MODEL_BATCH"))
    # How long a short batch of events waits for more before it is applied (one transaction for a burst).
    read_model_linger_ms: float = Field(
        default=50.0, ge=0, le=5000, validation_alias=AliasChoices("READ_MODEL_LINGER_MS")
    )
    # Assignment states the read model's fold keeps in memory between batches instead of reading
    # them back (services.shared.projection.KeptStates; about 25 KB each); 0: read every one back.
    read_model_states_kept: int = Field(
        default=STATES_KEPT, ge=0, le=1_000_000, validation_alias=AliasChoices("READ_MODEL_STATES_KEPT")
    )
    # Status pages and read-model details kept until the read model changes (answers.py); 0: off.
    answer_cache_mib: float = Field(default=16.0, ge=0, le=4096, validation_alias=AliasChoices("ANSWER_CACHE_MIB"))
    # Evidence files (佐证材料): a directory under POLICYFLOW_VAR unless an S3 bucket is named.
    evidence_dir: Path | None = Field(default=None, validation_alias=AliasChoices("EVIDENCE_DIR"))
    evidence_s3_bucket: str | None = Field(default=None, validation_alias=AliasChoices("EVIDENCE_S3_BUCKET"))
    evidence_s3_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("EVIDENCE_S3_ENDPOINT_URL")
    )
    evidence_s3_prefix: str = Field(default="evidence/", validation_alias=AliasChoices("EVIDENCE_S3_PREFIX"))
    update_timeout: float = Field(default=30.0, gt=0, validation_alias=AliasChoices("UPDATE_TIMEOUT_SECONDS"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    # HTTP worker processes on one socket (uvicorn's supervisor restarts any that dies). All
    # serve requests; one at a time runs the read model's consumer (subscribers.lease).
    workers: int = Field(default=1, ge=1, le=32, validation_alias=AliasChoices("PROGRESS_WORKERS"))

    # Sign-in (services/progress/accounts.py, signin.py): cookies only over HTTPS when set.
    secure_cookie: bool = Field(default=False, validation_alias=AliasChoices("POLICYFLOW_SECURE_COOKIE"))
    session_hours: float = Field(default=12.0, gt=0, le=24 * 31, validation_alias=AliasChoices("SESSION_HOURS"))
    signin_max_failures: int = Field(default=5, ge=1, le=100, validation_alias=AliasChoices("SIGNIN_MAX_FAILURES"))
    signin_lock_minutes: float = Field(default=15.0, gt=0, validation_alias=AliasChoices("SIGNIN_LOCK_MINUTES"))
    # Sign-in attempts (pages and /v1/auth/token) per client address per minute.
    signin_per_minute: int = Field(default=20, ge=1, le=10000, validation_alias=AliasChoices("SIGNIN_PER_MINUTE"))
    # How long a bearer token got with a password (`policyflow login`) lasts.
    login_token_hours: float = Field(default=12.0, gt=0, le=24 * 31, validation_alias=AliasChoices("LOGIN_TOKEN_HOURS"))

    def db_url(self) -> str:
        return self.database_url or sqlite_url(self.var_dir / "progress.sqlite")

    def evidence_path(self) -> Path:
        return self.evidence_dir or self.var_dir / "evidence"

    def keys(self) -> Path:
        return self.key_dir or self.var_dir / "keys"
