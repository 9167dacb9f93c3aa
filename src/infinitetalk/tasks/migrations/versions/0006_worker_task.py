"""A worker's current task is read from the tasks it claimed (tasks.worker_id), not kept on its row as well.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the workers table has no index a batch copy could lose (unlike tasks, see 0005)
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("task_id")


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("task_id", sa.String(40), nullable=True))
