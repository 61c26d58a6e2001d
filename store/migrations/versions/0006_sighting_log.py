"""sighting log: one row per claim sighting, for growth over time windows (review/gaps.py)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain CREATE TABLE (nothing existing is rebuilt). Sightings before this revision are not
    # backfilled: claims.sightings and claim_clusters.sightings keep the totals; the log only
    # measures growth from now on.
    op.create_table(
        "sightings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=True),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_sightings_claim_id"), "sightings", ["claim_id"], unique=False)
    op.create_index(op.f("ix_sightings_seen_at"), "sightings", ["seen_at"], unique=False)
    op.create_index("ix_sightings_cluster_seen", "sightings", ["cluster_id", "seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sightings_cluster_seen", table_name="sightings")
    op.drop_index(op.f("ix_sightings_seen_at"), table_name="sightings")
    op.drop_index(op.f("ix_sightings_claim_id"), table_name="sightings")
    op.drop_table("sightings")
