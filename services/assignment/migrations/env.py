"""Alembic environment of the assignment service: its own tables, version table alembic_version_assignment."""

from services.assignment.store import metadata
from services.shared.migrate import run_env

run_env(metadata, "assignment")
