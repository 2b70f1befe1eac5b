"""Indexes for a fleet of 10,000 desks (bench/README.md, "Office scale"):

- the overview's records (longest session ever, drill streaks) from one index:
  ``ix_rollups_day`` on daily_rollups carries ``longest_s`` beside ``drills``, so the one
  read of every stored day (``stats.record_days``) needs no table row;
- the Insights funnel's medians from counts: ``ix_nudges_day`` on nudges leads with the
  day and the whole second to stand (``models.stand_second``), so the nudges per day and
  second are counted in index order and only the times in a median's second are read.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _stand_second() -> sa.ColumnElement[int]:
    # As models.stand_second: the expression must be the one the queries group by.
    return sa.cast(sa.column("stand_s", sa.Float), sa.Integer)


def upgrade() -> None:
    op.drop_index("ix_rollups_day", table_name="daily_rollups")
    op.create_index("ix_rollups_day", "daily_rollups", ["day", "drills", "longest_s"])
    op.drop_index("ix_nudges_day", table_name="nudges")
    op.create_index(
        "ix_nudges_day",
        "nudges",
        [sa.column("day"), _stand_second(), sa.column("stand_s"), sa.column("drill_s")],
    )


def downgrade() -> None:
    op.drop_index("ix_nudges_day", table_name="nudges")
    op.create_index("ix_nudges_day", "nudges", ["day", "stand_s", "drill_s"])
    op.drop_index("ix_rollups_day", table_name="daily_rollups")
    op.create_index("ix_rollups_day", "daily_rollups", ["day", "drills"])
