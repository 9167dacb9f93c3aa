"""A two-step upload is taken by one PUT at a time (uploads.receiving), so two PUTs of one id cannot mix.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # rows already there are either complete or still waiting for their PUT: not receiving
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("receiving", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("receiving")
