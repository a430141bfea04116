"""Changes to the division: closed responsibilities keep their rows (ids are never used twice),
reassignments and revisions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("programmes", sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("responsibilities") as batch:
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("closed_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("successor_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("handover", sa.Text(), nullable=True))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=True))
    op.create_table(
        "revisions",
        sa.Column("programme_id", sa.String(64), primary_key=True),
        sa.Column("revision", sa.Integer(), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("diff", sa.Text(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_by", sa.String(200), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("revisions")
    with op.batch_alter_table("responsibilities") as batch:
        for name in ("revision", "handover", "successor_id", "closed_reason", "closed_at"):
            batch.drop_column(name)
    op.drop_column("programmes", "revision")
