"""An index in the supervisors' status order within a task number (the task filter of /v1/status
names no programme, so ix_rm_task, which leads with the programme, cannot serve it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

URGENCY = ("overdue_rank DESC", "(next_deadline_due IS NULL)", "next_deadline_due", "assignment_id")


def upgrade() -> None:
    # IF NOT EXISTS: a database made by `create_all` (adopted: stamped at 0001) has it already.
    op.create_index(
        "ix_rm_task_urgency", "rm_assignments", ["task_no", *(sa.text(e) for e in URGENCY)], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_rm_task_urgency", table_name="rm_assignments")
