"""Readings keep the fingerprint of their content, so that a restarted guard tells retries apart.

A sequence number the guard no longer remembers (after a restart, or older than the last body)
is judged against the stored reading: the same fingerprint is a retransmission, another one a
replay (ADR 0003). Readings stored before have none (NULL): only the replay window judges them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable fingerprint column (a plain ADD COLUMN: no table copy on SQLite)."""
    op.add_column("readings", sa.Column("fingerprint", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop the fingerprint column."""
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_column("fingerprint")
