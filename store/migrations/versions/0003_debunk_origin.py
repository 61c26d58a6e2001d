"""debunk origin: the original publisher of a republished debunk

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 02:50:20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on every database (no table rebuild on SQLite, which would cascade deletes).
    op.add_column("debunks", sa.Column("origin", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("debunks", "origin")  # native DROP COLUMN (SQLite ≥ 3.35): no table rebuild
