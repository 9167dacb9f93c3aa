"""Worker processes with their heartbeats, and which worker claimed each task.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("gpu", sa.String(40), nullable=True),
        sa.Column("engine", sa.String(40), nullable=False),
        sa.Column("task_id", sa.String(40), nullable=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("stopped_at", sa.DateTime, nullable=True),
    )
    # a plain ADD COLUMN: a batch copy of the table would drop the expression index from 0002 on SQLite
    op.add_column("tasks", sa.Column("worker_id", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "worker_id")
    op.drop_table("workers")
