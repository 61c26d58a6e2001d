"""match decisions: each claim match's decision (auto, suggest, none) and evidence passage

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("claim_matches", sa.Column("decision", sa.String(length=10), nullable=True))
    op.add_column("claim_matches", sa.Column("evidence_kind", sa.String(length=10), nullable=True))
    op.add_column("claim_matches", sa.Column("evidence", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("claim_matches", "evidence")
    op.drop_column("claim_matches", "evidence_kind")
    op.drop_column("claim_matches", "decision")
