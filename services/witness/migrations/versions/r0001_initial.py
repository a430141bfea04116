"""The witness's state: per log origin, the latest checkpoint it cosigned.

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "witnessed_logs",
        sa.Column("origin", sa.String(300), primary_key=True),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("cosigned_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("witnessed_logs")
