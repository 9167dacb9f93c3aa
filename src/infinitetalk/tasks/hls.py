"""The live preview of a chunked render: an HLS playlist of the segments finished so far, with signed links.

The playlist is made on each request from the task row (``Task.chunks``), so it grows as chunks finish and ends
(``#EXT-X-ENDLIST``) once the task succeeded. Its segment links carry the playlist link's own expiry: a player
that was given the playlist can fetch every segment in it for as long as the playlist link lasts.
"""

from __future__ import annotations

from infinitetalk.config import Settings
from infinitetalk.errors import Gone
from infinitetalk.media.segments import hls_playlist
from infinitetalk.storage import Storage
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.models import Task, TaskStatus
from infinitetalk.tasks.views import base_url, file_url, preview_ended


def preview_playlist(sessions: SessionFactory, storage: Storage, settings: Settings, task_id: str, *,
                     expires: int) -> str:
    """The playlist text; Gone when the task has no preview (not started, or failed and cleaned up)."""
    with sessions() as session:
        task = session.get(Task, task_id)
    segments = (task.chunks or {}).get("segments") if task is not None else None
    if not segments or task.state in (TaskStatus.FAILED, TaskStatus.CANCELED):
        raise Gone("this task has no preview: it has not finished a chunk yet, or it failed or was canceled")
    if preview_ended(task, settings):
        raise Gone("the live preview ended with the task: its segments were deleted a few minutes after the video "
                   "was finished; download the video from the task's outputs")
    base = base_url(task, settings)
    return hls_playlist([(file_url(storage, base, task_id, name, expires), seconds) for name, seconds in segments],
                        ended=task.state is TaskStatus.SUCCEEDED)
