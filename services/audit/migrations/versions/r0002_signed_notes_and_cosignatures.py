"""Checkpoints as C2SP signed notes, and the witnesses' cosignatures of them.

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
    op.add_column("checkpoints", sa.Column("note", sa.Text(), nullable=True))
    op.create_table(
        "cosignatures",
        sa.Column("size", sa.BigInteger(), autoincrement=False, primary_key=True),
        sa.Column("witness", sa.String(200), primary_key=True),
        sa.Column("witness_key", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cosignatures")
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("note")
