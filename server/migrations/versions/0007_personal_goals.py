"""Personal goals: each user's own daily goal (longest stretch, hours with a stand-up),
one row per user, gone with the user.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "personal_goals",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("max_stretch_min", sa.Integer(), nullable=False),
        sa.Column("break_hours", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_personal_goals_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_personal_goals")),
    )


def downgrade() -> None:
    op.drop_table("personal_goals")
