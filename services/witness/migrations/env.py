"""Alembic environment of the witness: its own table, version table alembic_version_witness."""

from services.shared.migrate import run_env
from services.witness.store import metadata

run_env(metadata, "witness")
