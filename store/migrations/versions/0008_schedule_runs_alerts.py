"""scheduled runs and their history, alerts sent (for de-duplication); crawl_runs.flagged and schedule_run_id

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(36), nullable=False),
        sa.Column("schedule_id", sa.String(100), nullable=False),
        sa.Column("spider", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(200), nullable=True),
        sa.Column("args", sa.JSON(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("items", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("errors", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("errors_by_kind", sa.JSON(), nullable=True),
        sa.Column("new_claims", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("new_debunks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("flagged", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_key", name="uq_schedule_runs_run_key"),
    )
    op.create_index("ix_schedule_runs_schedule_started", "schedule_runs", ["schedule_id", "started_at"], unique=False)
    op.create_index("ix_schedule_runs_status", "schedule_runs", ["status"], unique=False)
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("deliveries", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alerts_fingerprint_created", "alerts", ["fingerprint", "created_at"], unique=False)
    with op.batch_alter_table("crawl_runs") as b:
        b.add_column(sa.Column("flagged", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("schedule_run_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crawl_runs") as b:
        b.drop_column("schedule_run_id")
        b.drop_column("flagged")
    op.drop_index("ix_alerts_fingerprint_created", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_schedule_runs_status", table_name="schedule_runs")
    op.drop_index("ix_schedule_runs_schedule_started", table_name="schedule_runs")
    op.drop_table("schedule_runs")
