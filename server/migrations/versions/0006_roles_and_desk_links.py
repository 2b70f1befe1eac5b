"""Roles and privacy: users get a role and a "share with admins" flag, and desk_links ties
users to their own desks. Every user of an older database becomes an admin, since every
user could see and change every desk before roles existed (docs/privacy.md says how to
make them members).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=16), nullable=False, server_default="admin")
        )
        batch.add_column(
            sa.Column("shares_with_admins", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # The defaults above fill the existing rows; new rows get theirs from the application.
    with op.batch_alter_table("users") as batch:
        batch.alter_column("role", server_default=None)
        batch.alter_column("shares_with_admins", server_default=None)
    op.create_table(
        "desk_links",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_desk_links_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "device_id", name=op.f("pk_desk_links")),
    )
    op.create_index("ix_desk_links_device", "desk_links", ["device_id"])


def downgrade() -> None:
    op.drop_index("ix_desk_links_device", table_name="desk_links")
    op.drop_table("desk_links")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("shares_with_admins")
        batch.drop_column("role")
