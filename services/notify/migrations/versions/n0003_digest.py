"""The daily digest: each delivery's Beijing day and the digest a folded notice went into.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notify_deliveries") as batch:
        batch.add_column(sa.Column("day", sa.String(10), nullable=True))
        batch.add_column(sa.Column("digest_id", sa.String(40), nullable=True))
    op.create_index("ix_notify_day", "notify_deliveries", ["owner", "channel", "recipient", "day"])


def downgrade() -> None:
    op.drop_index("ix_notify_day", table_name="notify_deliveries")
    with op.batch_alter_table("notify_deliveries") as batch:
        batch.drop_column("digest_id")
        batch.drop_column("day")
