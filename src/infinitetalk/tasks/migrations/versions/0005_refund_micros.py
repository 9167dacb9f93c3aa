"""What a task's key got back when it ended (a canceled task pays for the video it made, the rest comes back).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN, like 0003: a batch copy of the table would drop the expression index from 0002 on SQLite
    op.add_column("tasks", sa.Column("refund_micros", sa.BigInteger, nullable=False, server_default="0"))
    # until now a refund was always the whole price
    op.execute("UPDATE tasks SET refund_micros = price_micros WHERE refunded")


def downgrade() -> None:
    op.drop_column("tasks", "refund_micros")
