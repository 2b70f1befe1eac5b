"""What the fleet overview reads, kept by ingest so it reads a row per desk and a row per
day (10,000 desks x 1 year on PostgreSQL: bench/README.md, "Office scale"):

- each desk's seat state on its devices row: ``devices.seat_type`` and ``devices.seat_at``,
  its latest stored seated/stood_up event (server/seat.py), instead of two lookups per desk
  into raw events;
- ``fleet_days``: per day, every desk's drills that count and the longest session
  (server/fleet_days.py), instead of a pass over every desk's rollups of the year.

Back-fill: both from what the server holds (the events, the rollups).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not Alembic's batch mode: on SQLite that re-creates a table, and the
# tables that refer to devices would stop its DROP (SQLite adds and drops columns since 3.35).
def upgrade() -> None:
    op.add_column("devices", sa.Column("seat_type", sa.String(length=32), nullable=True))
    op.add_column("devices", sa.Column("seat_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "fleet_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("drills", sa.Integer(), nullable=False),
        sa.Column("longest_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_fleet_days")),
    )

    from sitwatch.server import fleet_days, seat

    seat.refresh(op.get_bind())
    fleet_days.refresh(op.get_bind(), None)


def downgrade() -> None:
    op.drop_table("fleet_days")
    op.drop_column("devices", "seat_at")
    op.drop_column("devices", "seat_type")
