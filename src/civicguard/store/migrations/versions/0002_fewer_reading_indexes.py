"""Keep two indexes on readings: (device_id, seq) and (stream, ts).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The (cell, ts) and (ts) indexes cost more write throughput than their queries were worth
(docs/adr/0004-reading-indexes.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Drop the place and time indexes of readings."""
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_readings_cell_ts"))
        batch_op.drop_index(batch_op.f("ix_readings_ts"))


def downgrade() -> None:
    """Put the place and time indexes back."""
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_readings_ts"), ["ts"], unique=False)
        batch_op.create_index(batch_op.f("ix_readings_cell_ts"), ["cell", "ts"], unique=False)
