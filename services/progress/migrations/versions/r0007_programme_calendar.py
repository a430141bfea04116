"""The dates of programmes' own calendars (BulletinIssued, ScoresSnapshotted, EvaluationOpened).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Event-sourced, and new with its events: nothing to fill from before.
    op.create_table(
        "rm_programme_calendar",
        sa.Column("programme_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("rm_programme_calendar")
