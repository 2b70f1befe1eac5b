"""Each desk's seat state on its devices row: ``devices.seat_type`` and ``devices.seat_at``,
its latest stored seated/stood_up event, kept by ingest (server/seat.py), so the fleet
overview reads a row per desk instead of two lookups per desk into raw events (690 ms for
10,000 desks on PostgreSQL: bench/README.md, "Office scale").

Back-fill: every desk's from its stored events.

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

    from sitwatch.server import seat

    seat.refresh(op.get_bind())


def downgrade() -> None:
    op.drop_column("devices", "seat_at")
    op.drop_column("devices", "seat_type")
