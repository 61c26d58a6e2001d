"""index_outbox ids are never reused on SQLite (AUTOINCREMENT)

Without AUTOINCREMENT SQLite hands out max(rowid) + 1, so once the outbox is drained empty the next
write gets id 1 again. A drain deletes the rows it read by id after writing them to the index; when
another drain had meanwhile written and deleted the same rows, and a new write had taken a freed id,
the first drain deleted that new row unindexed (the claim was then in the store, not in the index and
not pending: tests/faults/test_fault_kill_server.py caught it). PostgreSQL's sequences never reuse
ids; there this revision changes nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 12:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The table is copied into a new one declared AUTOINCREMENT; pending rows keep their ids.
    with op.batch_alter_table("index_outbox", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("index_outbox", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
