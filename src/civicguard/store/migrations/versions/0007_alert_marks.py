"""Operators' true/false marks on alerts, kept for tuning; alerts explain themselves (issue 4).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the alerts' plain-language explanation and the table of operators' marks."""
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("explanation", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "alert_marks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("detector", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("marked_by", sa.String(length=64), nullable=False),
        sa.Column("marked_at", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_marks")),
    )
    with op.batch_alter_table("alert_marks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_marks_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_marks_detector"), ["detector"], unique=False)


def downgrade() -> None:
    """Drop the marks and the explanations."""
    with op.batch_alter_table("alert_marks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_marks_detector"))
        batch_op.drop_index(batch_op.f("ix_alert_marks_alert_id"))
    op.drop_table("alert_marks")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("explanation")
