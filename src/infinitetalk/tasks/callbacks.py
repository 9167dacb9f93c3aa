"""Provider-shaped webhook bodies.

A task submitted through a provider-compatible route names a ``callback_format`` (e.g. ``apixo``); when it
ends, the lifecycle asks here for the body that provider's users expect instead of our own
``{type, timestamp, data}`` envelope. The formats themselves live with their routers
(``infinitetalk.api.compat.<provider>``), which register them on import; the delivery (outbox, signing,
retries) stays the one the task service already has.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from infinitetalk.tasks.models import Task
from infinitetalk.tasks.schemas import TaskPublic

log = logging.getLogger("infinitetalk.tasks")

#: (task row, its public view) -> the JSON body to POST.
Format = Callable[[Task, TaskPublic], dict]
_FORMATS: dict[str, Format] = {}


def register(name: str, render: Format) -> None:
    _FORMATS[name] = render


def render(task: Task, view: TaskPublic) -> dict | None:
    """The body for ``task``'s callback format, or None for our own envelope."""
    name = (task.request or {}).get("callback_format")
    if not name:
        return None
    if name not in _FORMATS:
        # a worker process that never imported the API still knows the formats
        importlib.import_module("infinitetalk.api.compat")
    fmt = _FORMATS.get(name)
    if fmt is None:
        log.error("task %s: unknown callback format %r; sending the native body", task.id, name)
        return None
    return fmt(task, view)
