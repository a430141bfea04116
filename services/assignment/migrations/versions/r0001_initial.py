"""Initial schema of the assignment service: programmes, units, the division, the inbox projection.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
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
        "programmes",
        sa.Column("programme_id", sa.String(64), primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("document_no", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(200), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("event_published", sa.Boolean(), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("aliases", sa.Text(), nullable=False),
    )
    op.create_table(
        "responsibilities",
        sa.Column("assignment_id", sa.String(200), primary_key=True),
        sa.Column("programme_id", sa.String(64), nullable=False),
        sa.Column("task_no", sa.Integer(), nullable=False),
        sa.Column("task_title", sa.Text(), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("start_year", sa.Integer(), nullable=False),
        sa.Column("horizon_year", sa.Integer(), nullable=False),
        sa.Column("lead_assignment_id", sa.String(200), nullable=True),
    )
    op.create_index("ix_resp_unit", "responsibilities", ["unit_id", "programme_id"])
    create_projection("inbox")


def downgrade() -> None:
    drop_projection("inbox")
    op.drop_table("responsibilities")
    op.drop_table("units")
    op.drop_table("programmes")


def create_projection(prefix: str) -> None:
    """The tables of services.shared.projection_tables.projection_tables, as they were at 0001."""
    op.create_table(
        f"{prefix}_assignments",
        sa.Column("assignment_id", sa.String(200), primary_key=True),
        sa.Column("programme_id", sa.String(64), nullable=False),
        sa.Column("task_no", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("task_title", sa.Text(), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("horizon_year", sa.Integer(), nullable=False),
        sa.Column("overdue_level", sa.String(10), nullable=False),
        sa.Column("overdue_rank", sa.Integer(), nullable=False),
        sa.Column("next_deadline_due", sa.Date(), nullable=True),
        sa.Column("next_deadline", sa.Text(), nullable=True),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
    )
    op.create_index(f"ix_{prefix}_unit", f"{prefix}_assignments", ["unit_id", "programme_id"])
    op.create_index(f"ix_{prefix}_task", f"{prefix}_assignments", ["programme_id", "task_no"])
    op.create_index(f"ix_{prefix}_stage", f"{prefix}_assignments", ["stage"])
    op.create_index(f"ix_{prefix}_overdue", f"{prefix}_assignments", ["overdue_rank"])
    op.create_table(
        f"{prefix}_programmes",
        sa.Column("programme_id", sa.String(64), primary_key=True),
        sa.Column("document_no", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=False),
        sa.Column("responsibility_count", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        f"{prefix}_tracking",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def drop_projection(prefix: str) -> None:
    for name in ("tracking", "programmes", "assignments"):
        op.drop_table(f"{prefix}_{name}")
