"""Witness settings, read from the environment when it starts (never at import).

The witness is another party's process: its key directory and database are its own, never the
services' (`POLICYFLOW_KEY_DIR`, `DATABASE_URL` are not read), so whoever controls the log's
host and keys does not thereby hold the witness's.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.shared.db import sqlite_url
from services.shared.signed_note import ED25519, NoteError, Verifier, check_name, parse_vkey

DEFAULT_NAME = "policyflow.local/witness"


class WitnessSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("WITNESS_HOST", "HOST"))
    port: int = Field(8105, ge=1, le=65535, validation_alias=AliasChoices("WITNESS_PORT"))
    var_dir: Path = Field(Path("var"), validation_alias=AliasChoices("POLICYFLOW_VAR"))
    # Empty / None: $POLICYFLOW_VAR/witness/witness.sqlite and $POLICYFLOW_VAR/witness/keys.
    database_url: str = Field("", validation_alias=AliasChoices("WITNESS_DATABASE_URL"))
    key_dir: Path | None = Field(None, validation_alias=AliasChoices("WITNESS_KEY_DIR"))
    # The witness's key name in its cosignature lines (a schema-less URL naming it, per C2SP).
    name: str = Field(DEFAULT_NAME, min_length=1, validation_alias=AliasChoices("WITNESS_NAME"))
    # The logs it witnesses: their verifier keys (name+keyid+base64), comma-separated; a key's name
    # is the log's origin, as the audit log signs with AUDIT_ORIGIN. Several keys may share an origin.
    log_keys: str = Field("", validation_alias=AliasChoices("WITNESS_LOG_KEYS"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("WITNESS_LOG_LEVEL", "LOG_LEVEL"))

    @model_validator(mode="after")
    def _defaults(self) -> WitnessSettings:
        check_name(self.name)
        if not self.database_url:
            self.database_url = sqlite_url(self.var_dir / "witness" / "witness.sqlite")
        if self.key_dir is None:
            self.key_dir = self.var_dir / "witness" / "keys"
        self.trusted_logs()  # a malformed key stops the start, naming it
        return self

    @property
    def keys(self) -> Path:
        assert self.key_dir is not None  # set by _defaults
        return self.key_dir

    def trusted_logs(self) -> dict[str, list[Verifier]]:
        """origin -> the log's note verifier keys."""
        logs: dict[str, list[Verifier]] = {}
        for text in (k.strip() for k in self.log_keys.split(",")):
            if not text:
                continue
            try:
                verifier = parse_vkey(text)
            except NoteError as exc:
                raise ValueError(f"WITNESS_LOG_KEYS (--log-key): {exc}") from exc
            if verifier.key_type != ED25519:
                raise ValueError(f"WITNESS_LOG_KEYS (--log-key): {verifier.name} is not a log's note key (type 0x01)")
            logs.setdefault(verifier.name, []).append(verifier)
        return logs
