"""Dead letters keep the identity their refusal got at ingest, unique: a redelivery is stored once.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the event id; dead letters stored before have none (NULLs never conflict)."""
    op.add_column("dead_letters", sa.Column("event_id", sa.String(32), nullable=True))
    op.create_index("uq_dead_letters_event_id", "dead_letters", ["event_id"], unique=True)


def downgrade() -> None:
    """Drop the event id and its index."""
    op.drop_index("uq_dead_letters_event_id", table_name="dead_letters")
    op.drop_column("dead_letters", "event_id")
