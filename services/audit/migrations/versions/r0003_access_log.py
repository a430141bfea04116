"""The access log: every access decision the services sent to the access stream.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("why", sa.String(500), nullable=False),
        sa.Column("sub", sa.String(200), nullable=True),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("unit_id", sa.String(100), nullable=True),
        sa.Column("target", sa.String(200), nullable=True),
    )
    op.create_index("ix_access_at", "access_log", ["at"])
    op.create_index("ix_access_sub", "access_log", ["sub", "at"])
    op.create_index("ix_access_refused", "access_log", ["allowed", "at"])


def downgrade() -> None:
    op.drop_table("access_log")
