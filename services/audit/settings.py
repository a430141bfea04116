"""Audit service settings, read from the environment when the service starts (never at import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.subjects import AUDIT_DURABLE, EVENT_STREAM
from services.shared.db import sqlite_url

DEFAULT_ORIGIN = "policyflow.local/audit"


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("AUDIT_HOST", "HOST"))
    port: int = Field(8103, ge=1, le=65535, validation_alias=AliasChoices("AUDIT_PORT"))
    nats_url: str = Field("nats://127.0.0.1:4333", validation_alias=AliasChoices("NATS_URL"))
    var_dir: Path = Field(Path("var"), validation_alias=AliasChoices("POLICYFLOW_VAR"))
    # Empty means: derived from var_dir when the settings are read (see _defaults).
    database_url: str = Field("", validation_alias=AliasChoices("AUDIT_DATABASE_URL", "DATABASE_URL"))
    key_dir: Path | None = Field(None, validation_alias=AliasChoices("POLICYFLOW_KEY_DIR"))
    checkpoint_every: int = Field(
        1000, ge=0, validation_alias=AliasChoices("AUDIT_CHECKPOINT_EVERY", "CHECKPOINT_EVERY")
    )  # 0: only on demand
    # A checkpoint at most this many seconds after the ledger grew, whatever its size (0: off).
    checkpoint_interval: float = Field(
        10.0, ge=0, validation_alias=AliasChoices("AUDIT_CHECKPOINT_INTERVAL", "CHECKPOINT_INTERVAL")
    )
    # The log's name in its C2SP checkpoints (origin line) and signature lines.
    origin: str = Field(DEFAULT_ORIGIN, min_length=1, validation_alias=AliasChoices("AUDIT_ORIGIN"))
    # Witnesses asked to cosign each new checkpoint: URLs and their verifier keys, comma-separated, in one order.
    witness_urls: str = Field("", validation_alias=AliasChoices("WITNESS_URLS"))
    witness_keys: str = Field("", validation_alias=AliasChoices("WITNESS_KEYS"))
    batch_size: int = Field(500, ge=1, le=5000, validation_alias=AliasChoices("AUDIT_BATCH_SIZE"))
    stream: str = Field(EVENT_STREAM, validation_alias=AliasChoices("AUDIT_STREAM"))
    durable: str = Field(AUDIT_DURABLE, validation_alias=AliasChoices("AUDIT_DURABLE"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("AUDIT_LOG_LEVEL", "LOG_LEVEL"))

    @model_validator(mode="after")
    def _defaults(self) -> AuditSettings:
        """The SQLite file var/audit.sqlite and the key directory var/keys unless set.

        The key directory holds the JWT public key and the checkpoint signing key.
        """
        if not self.database_url:
            self.database_url = sqlite_url(self.var_dir / "audit.sqlite")
        if self.key_dir is None:
            self.key_dir = self.var_dir / "keys"
        if len(self.witnesses) != len([k for k in self.witness_keys.split(",") if k.strip()]):
            raise ValueError("WITNESS_URLS and WITNESS_KEYS must name as many witnesses, in the same order")
        return self

    @property
    def witnesses(self) -> list[str]:
        return [u.strip() for u in self.witness_urls.split(",") if u.strip()]

    @property
    def keys(self) -> Path:
        assert self.key_dir is not None  # set by _defaults
        return self.key_dir
