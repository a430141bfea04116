"""Alembic environment of the notification service: its own tables, version table alembic_version_notify."""

from services.notify.store import metadata
from services.shared.migrate import run_env

run_env(metadata, "notify")
