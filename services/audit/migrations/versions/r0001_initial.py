"""Initial schema of the audit service: the ledger, its tracking position, checkpoints and reports.

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
        "ledger",
        sa.Column("ledger_seq", sa.BigInteger(), autoincrement=False, primary_key=True),
        sa.Column("event_id", sa.String(200), nullable=False, unique=True),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("programme_id", sa.String(100), nullable=False),
        sa.Column("assignment_id", sa.String(200)),
        sa.Column("unit_id", sa.String(100)),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.String(32), nullable=False),
        sa.Column("canonical", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_ledger_assignment_seq", "ledger", ["assignment_id", "seq"])
    op.create_index("ix_ledger_unit", "ledger", ["unit_id", "ledger_seq"])
    op.create_table(
        "tracking",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, primary_key=True),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
    )
    op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, primary_key=True),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "gaps",
        sa.Column("id", sa.Integer(), autoincrement=True, primary_key=True),
        sa.Column("stream_key", sa.String(200), nullable=False),
        sa.Column("expected_seq", sa.Integer(), nullable=False),
        sa.Column("got_seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("detected_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "rejects",
        sa.Column("id", sa.Integer(), autoincrement=True, primary_key=True),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in ("rejects", "gaps", "merkle_nodes", "checkpoints", "tracking"):
        op.drop_table(table)
    op.drop_index("ix_ledger_unit", table_name="ledger")
    op.drop_index("ix_ledger_assignment_seq", table_name="ledger")
    op.drop_table("ledger")
