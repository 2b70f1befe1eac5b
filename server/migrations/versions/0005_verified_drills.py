"""Drills say whether they count: ``drills.verified``, false for a circuit done while the
seat was taken (docs/protocol.md, "Honest drills").

Backfill: the rule for a drill whose event does not say is that it counts, as before desks
checked. Every stored drill is such a drill (the server kept only the schema's keys of an
event, and ``verified`` was not one), so every existing row becomes verified; the rollups'
drill counts stay right as they are.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drills", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verified", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("drills", schema=None) as batch_op:
        batch_op.drop_column("verified")
