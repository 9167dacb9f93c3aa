"""The task service: store (SQLAlchemy + Alembic), billing, keys, limits, lifecycle and TaskService.

Import the parts from their modules (``infinitetalk.tasks.service.TaskService`` ...); this package
module stays empty so that ``storage`` and ``workers`` can use ``tasks.errors`` without cycles.
"""
