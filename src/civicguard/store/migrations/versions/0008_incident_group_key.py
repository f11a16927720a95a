"""Incidents keep what groups their alerts, so that alerts without a place stop merging into one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the incidents' group key; rows stored before have "" (keyed by their cell's area)."""
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_key", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    """Drop the group key."""
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("group_key")
