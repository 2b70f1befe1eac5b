"""The Insights page from derived rows: ``nudges`` (one prompt cycle each, with the seconds to
the first stand-up and drill) and ``daily_insights`` (per desk and day: bouts per length
bucket, seated seconds per local clock hour, drill steps per circuit step).

Back-fill: both are derived from the stored sessions and events by ingest's own rebuild
(``insight_rows.rebuild_insights``), in the server's time zone and day start when the
server runs the upgrade (``migrate.upgrade(calendar=...)``), else UTC from 04:00 (the
configuration's defaults). Days whose events were pruned get no nudges or drill steps,
as the Insights page showed none for them before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BOUTS = ("bouts_0_15", "bouts_15_30", "bouts_30_60", "bouts_60_90", "bouts_90_up")
HOURS = tuple(f"seated_h{hour:02d}" for hour in range(24))
STEPS = tuple(
    f"steps_{key}"
    for key in (
        "setup",
        "glute_bridge",
        "clams",
        "reverse_clams",
        "athletic_stance",
        "band_walks",
        "other",
    )
)


def upgrade() -> None:
    op.create_table(
        "nudges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("boot_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stand_s", sa.Float(), nullable=True),
        sa.Column("drill_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_nudges_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nudges")),
        sa.UniqueConstraint("event_id", name=op.f("uq_nudges_event_id")),
    )
    op.create_index("ix_nudges_device_start", "nudges", ["device_id", "started_at"])
    op.create_index("ix_nudges_day", "nudges", ["day", "stand_s", "drill_s"])
    op.create_table(
        "daily_insights",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in BOUTS),
        *(sa.Column(name, sa.Float(), nullable=False) for name in HOURS),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in STEPS),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_daily_insights_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", "day", name=op.f("pk_daily_insights")),
    )
    op.create_index("ix_daily_insights_day", "daily_insights", ["day"])

    from sitwatch.calendar import Calendar
    from sitwatch.server.ingest.insight_rows import rebuild_insights

    calendar = context.config.attributes.get("calendar") or Calendar()
    rebuild_insights(op.get_bind(), calendar)


def downgrade() -> None:
    op.drop_index("ix_daily_insights_day", table_name="daily_insights")
    op.drop_table("daily_insights")
    op.drop_index("ix_nudges_day", table_name="nudges")
    op.drop_index("ix_nudges_device_start", table_name="nudges")
    op.drop_table("nudges")
