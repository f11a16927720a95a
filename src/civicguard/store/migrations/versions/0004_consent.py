"""Consent registry and signed consent receipts (issue 3).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the consent registry and the receipts table."""
    op.create_table(
        "consents",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("subject", sa.String(length=40), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.Float(), nullable=False),
        sa.Column("withdrawn_at", sa.Float(), nullable=True),
        sa.Column("grant_receipt", sa.String(length=36), nullable=False),
        sa.Column("withdraw_receipt", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(
        op.f("ix_consents_subject_stream"), "consents", ["subject", "stream"], unique=False
    )
    op.create_table(
        "consent_receipts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=40), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("document_sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_receipts")),
    )
    op.create_index(
        op.f("ix_consent_receipts_subject"), "consent_receipts", ["subject"], unique=False
    )


def downgrade() -> None:
    """Drop the consent tables."""
    op.drop_index(op.f("ix_consent_receipts_subject"), table_name="consent_receipts")
    op.drop_table("consent_receipts")
    op.drop_index(op.f("ix_consents_subject_stream"), table_name="consents")
    op.drop_table("consents")
