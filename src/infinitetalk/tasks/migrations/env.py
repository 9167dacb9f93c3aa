"""Alembic environment: run against the connection the caller hands in (see infinitetalk.tasks.db.migrate)."""

from alembic import context

from infinitetalk.tasks.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
