"""Programmes' indicators and scoring rules (from ProgrammeImported), for figures and scores.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Event-sourced: a read model made before it fills it on `policyflow admin rebuild`.
    op.create_table(
        "rm_programme_outcomes",
        sa.Column("programme_id", sa.String(64), primary_key=True),
        sa.Column("outcomes", sa.Text(), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("rm_programme_outcomes")
