"""The retention sweep: delete outputs past their TTL and uploads no task used, in any storage."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from infinitetalk.config import Settings
from infinitetalk.periodic import Periodic
from infinitetalk.storage.base import Storage

log = logging.getLogger(__name__)


#: How our writers name a file while it is being written: hidden, with ".partial" in its name (media.video,
#: media.segments, workers.checkpoint).
PARTIAL_GLOB = ".*.partial*"


def _is_partial(name: str) -> bool:
    return name.startswith(".") and ".partial" in name


def _partials_open() -> set[str] | None:
    """Partial files some process of ours has open, from /proc; None where the system cannot tell."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    held = set()
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            fds = list(fd_dir.iterdir())
        except OSError:  # the process ended, or belongs to another user (who cannot write our files)
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if _is_partial(os.path.basename(target)):
                    held.add(target)
    return held


def remove_orphan_partials(storage: Storage) -> int:
    """At start-up: delete the partial files (videos, segments, checkpoints) no live process is writing (left by
    a killed run).

    A writer keeps its partial file open until it renames it, so a partial nobody has open is a dead
    process's. Where /proc is missing every partial counts as dead: on one machine, anything present
    before this process starts its workers was written by a process that is gone.
    """
    held = _partials_open()
    removed = 0
    for path in (storage.root / "outputs").glob(f"*/{PARTIAL_GLOB}"):
        if held is not None and str(path) in held:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
        with contextlib.suppress(OSError):  # not empty: the task's finished video or another partial
            path.parent.rmdir()
    if removed:
        log.info("start-up: deleted %d partial file(s) left by a stopped process", removed)
    return removed


#: How a render names its scratch folder in the system's temp folder (``workers.render``), followed by the
#: machine's name and the pid of the process that renders: several servers and workers may share one TMPDIR, and
#: only a folder whose process is gone (a kill -9 skips the folder's clean-up) is start-up's to delete.
RENDER_SCRATCH = "infinitetalk-render-"


def render_scratch_prefix() -> str:
    """The prefix of this process's render scratch folders."""
    return f"{RENDER_SCRATCH}{socket.gethostname()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_dead_render_scratch(temp_dir: Path | None = None) -> int:
    """At start-up: delete the render scratch folders of this machine's processes that are gone.

    Folders of a live pid stay (another server or worker rendering now), and so do folders named by another
    machine (a TMPDIR shared between containers: their pids are not ours to judge) or in an older style."""
    mine = f"{RENDER_SCRATCH}{socket.gethostname()}-"
    removed = 0
    for path in Path(temp_dir or tempfile.gettempdir()).glob(glob.escape(mine) + "*"):
        pid = path.name[len(mine):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not path.is_dir():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    if removed:
        log.info("start-up: deleted %d render scratch folder(s) left by a stopped process", removed)
    return removed


def sweep(storage: Storage, settings: Settings, *, now: float | None = None) -> int:
    """Delete expired outputs, finished tasks' preview segments and stale uploads; return how many things went.

    Partial files count as a dead process's after twice the task timeout: no render runs that long.
    """
    now = time.time() if now is None else now
    files, uploads = storage.delete_expired(output_ttl_s=settings.output_ttl_s, upload_ttl_s=settings.upload_ttl_s,
                                            stale_s=2 * settings.task_timeout_s, now=now,
                                            preview_grace_s=settings.preview_grace_s)
    if files or uploads:
        log.info("retention sweep deleted %d output file(s) and %d upload(s)", files, uploads)
    return files + uploads


class Sweeper:
    """Runs ``sweep`` every ``sweep_interval_s`` in a daemon thread, then ``also`` (the task service's own
    clean-up of what it records about the files, which this package cannot import)."""

    def __init__(self, storage: Storage, settings: Settings, *, also: Callable[[], object] = lambda: None) -> None:
        self._storage, self._settings, self._also = storage, settings, also
        self._rounds = Periodic("retention-sweep", settings.sweep_interval_s, self._round, at_start=True)

    def start(self) -> None:
        self._rounds.start()

    def stop(self) -> None:
        self._rounds.stop(wait=False)

    def _round(self) -> None:
        sweep(self._storage, self._settings)
        self._also()
