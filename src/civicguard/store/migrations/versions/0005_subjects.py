"""Subject-linked records sealed per subject, and subject requests (issue 3).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the subjects and subject requests tables."""
    op.create_table(
        "subjects",
        sa.Column("handle", sa.String(length=40), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("erased_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("handle", name=op.f("pk_subjects")),
    )
    op.create_table(
        "subject_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("done_at", sa.Float(), nullable=True),
        sa.Column("done_by", sa.String(length=64), nullable=True),
        sa.Column("citizen_sealed", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_requests")),
    )
    op.create_index(
        op.f("ix_subject_requests_subject"), "subject_requests", ["subject"], unique=False
    )
    op.create_index(
        op.f("ix_subject_requests_status"), "subject_requests", ["status"], unique=False
    )


def downgrade() -> None:
    """Drop the subjects and subject requests tables."""
    op.drop_index(op.f("ix_subject_requests_status"), table_name="subject_requests")
    op.drop_index(op.f("ix_subject_requests_subject"), table_name="subject_requests")
    op.drop_table("subject_requests")
    op.drop_table("subjects")
