"""The fleet's records (longest session ever, drill streaks) from one index: ``ix_rollups_day``
on daily_rollups carries ``longest_s`` beside ``drills``, so the overview's one read of every
stored day (``stats.record_days``: drills summed and the longest session per day) is an
index-only scan. At 10,000 desks x 1 year on PostgreSQL it took 75-90 ms, against 190 ms
for the streaks and 100-140 ms for the longest stretch read apart (bench/README.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 15:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_rollups_day", table_name="daily_rollups")
    op.create_index("ix_rollups_day", "daily_rollups", ["day", "drills", "longest_s"])


def downgrade() -> None:
    op.drop_index("ix_rollups_day", table_name="daily_rollups")
    op.create_index("ix_rollups_day", "daily_rollups", ["day", "drills"])
