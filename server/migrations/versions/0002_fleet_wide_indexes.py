"""Indexes for fleet-wide queries by time: pauses in force and a day's prompts (events by
type and time), a day's sessions and drills, and the fleet's days in daily_rollups.

Without them PostgreSQL read whole tables for the dashboard's overview of a large fleet
(bench/README.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 07:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_events_type_ts", "events", ["type", "ts"]),
    ("ix_sessions_start", "sitting_sessions", ["started_at"]),
    ("ix_drills_ts", "drills", ["ts"]),
    ("ix_rollups_day", "daily_rollups", ["day", "drills"]),  # drills: see models.DailyRollup
]


# SQLite keeps no planner statistics by default and misused this one (models.Event).
POSTGRESQL_ONLY = {"ix_events_type_ts"}


def _ours(dialect: str) -> list[tuple[str, str, list[str]]]:
    return [i for i in INDEXES if dialect == "postgresql" or i[0] not in POSTGRESQL_ONLY]


def upgrade() -> None:
    for name, table, columns in _ours(op.get_bind().dialect.name):
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(_ours(op.get_bind().dialect.name)):
        op.drop_index(name, table_name=table)
