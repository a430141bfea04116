"""Alembic environment of the progress service: its own tables, version table alembic_version_progress."""

from services.progress.store import metadata
from services.shared.migrate import run_env

run_env(metadata, "progress")
