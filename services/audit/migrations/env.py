"""Alembic environment of the audit service: its own tables, version table alembic_version_audit."""

from services.audit.store import metadata
from services.shared.migrate import run_env

run_env(metadata, "audit")
