"""A chunked render's progress and live preview: chunks and frames done, the HLS segments so far.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN, like 0003: a batch copy of the table would drop the expression index from 0002 on SQLite
    op.add_column("tasks", sa.Column("chunks", sa.JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "chunks")
