"""Citizen reports, stored only after PII scrubbing (issue 3).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the citizen reports table."""
    op.create_table(
        "citizen_reports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("cell", sa.String(length=16), nullable=True),
        sa.Column("subject", sa.String(length=40), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_sealed", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_citizen_reports")),
    )
    op.create_index(
        op.f("ix_citizen_reports_received_at"), "citizen_reports", ["received_at"], unique=False
    )
    op.create_index(
        op.f("ix_citizen_reports_subject"), "citizen_reports", ["subject"], unique=False
    )


def downgrade() -> None:
    """Drop the citizen reports table."""
    op.drop_index(op.f("ix_citizen_reports_subject"), table_name="citizen_reports")
    op.drop_index(op.f("ix_citizen_reports_received_at"), table_name="citizen_reports")
    op.drop_table("citizen_reports")
