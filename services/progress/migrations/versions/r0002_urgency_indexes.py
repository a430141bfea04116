"""Indexes in the supervisors' status order (most urgent first), overall and within a stage.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same expressions as services.progress.store.URGENCY (written out: a revision must not
# change when the models do later).
URGENCY = ("overdue_rank DESC", "(next_deadline_due IS NULL)", "next_deadline_due", "assignment_id")


def upgrade() -> None:
    # IF NOT EXISTS: a database made by `create_all` (adopted: stamped at 0001) has them already.
    op.create_index("ix_rm_urgency", "rm_assignments", [sa.text(e) for e in URGENCY], if_not_exists=True)
    op.create_index(
        "ix_rm_stage_urgency", "rm_assignments", ["stage", *(sa.text(e) for e in URGENCY)], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_rm_stage_urgency", table_name="rm_assignments")
    op.drop_index("ix_rm_urgency", table_name="rm_assignments")
