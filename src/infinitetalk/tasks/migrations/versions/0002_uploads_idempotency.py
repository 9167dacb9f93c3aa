"""Uploads as rows (names are data, never paths) and an idempotency index that holds in open mode.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("api_key_id", sa.String(40), nullable=True),
        sa.Column("filename", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_uploads_key_expires", "uploads", ["api_key_id", "expires_at"])
    # The old unique index let any number of rows share a NULL key id, so open-mode retries made duplicates.
    op.drop_index("ix_tasks_idempotency", table_name="tasks")
    op.create_index("ix_tasks_idempotency", "tasks", [sa.text("coalesce(api_key_id, '')"), "idempotency_key"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ix_tasks_idempotency", table_name="tasks")
    op.create_index("ix_tasks_idempotency", "tasks", ["api_key_id", "idempotency_key"], unique=True)
    op.drop_index("ix_uploads_key_expires", table_name="uploads")
    op.drop_table("uploads")
