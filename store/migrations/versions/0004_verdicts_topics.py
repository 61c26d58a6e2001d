"""verdicts and topics: an editor's verdict on a review; a claim's topic and explanation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (no table rebuild on SQLite, which would cascade deletes).
    op.add_column("reviews", sa.Column("verdict", sa.String(length=20), nullable=True))
    op.add_column("reviews", sa.Column("topic", sa.String(length=40), nullable=True))
    op.add_column("claims", sa.Column("topic", sa.String(length=40), nullable=True))
    op.add_column("claims", sa.Column("explanation", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("claims", "explanation")
    op.drop_column("claims", "topic")
    op.drop_column("reviews", "topic")
    op.drop_column("reviews", "verdict")
