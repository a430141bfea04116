"""Initial schema of the notification service: subscriptions, deliveries, task titles, position.

Revision ID: 0001
Revises:
Create Date: 2026-12-08
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
        "notify_subscriptions",
        sa.Column("owner", sa.String(100), primary_key=True),
        sa.Column("channel", sa.String(10), primary_key=True),
        sa.Column("address", sa.String(500), primary_key=True),
        sa.Column("secret", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "notify_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("unit_id", sa.String(100), nullable=True),
        sa.Column("assignment_id", sa.String(200), nullable=True),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("recipient", sa.String(500), nullable=False),
        sa.Column("level", sa.String(10), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("event_id", "channel", "recipient", name="uq_notify_delivery"),
    )
    op.create_index("ix_notify_due", "notify_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_notify_owner", "notify_deliveries", ["owner", "created_at"])
    op.create_table(
        "notify_assignments",
        sa.Column("assignment_id", sa.String(200), primary_key=True),
        sa.Column("programme_id", sa.String(100), nullable=False),
        sa.Column("task_no", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.String(100), nullable=True),
        sa.Column("task_title", sa.Text(), nullable=False),
        sa.Column("lead_assignment_id", sa.String(200), nullable=True),
    )
    op.create_table(
        "notify_position",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notify_position")
    op.drop_table("notify_assignments")
    op.drop_index("ix_notify_owner", table_name="notify_deliveries")
    op.drop_index("ix_notify_due", table_name="notify_deliveries")
    op.drop_table("notify_deliveries")
    op.drop_table("notify_subscriptions")
