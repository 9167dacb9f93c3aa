"""The retention sweep: delete outputs past their TTL and uploads no task used."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from infinitetalk.config import Settings
from infinitetalk.storage.local import LocalStorage

log = logging.getLogger(__name__)


def _older_than(folder: Path, age_s: float, now: float) -> list[Path]:
    if not folder.is_dir():
        return []
    return [entry for entry in folder.iterdir() if entry.stat().st_mtime + age_s < now]


def _expired_outputs(outputs: Path, ttl_s: float, stale_s: float, now: float) -> list[Path]:
    """Finished files past the TTL, and hidden partial files a dead process left behind.

    A finished file's mtime is when its task ended (the encoder's last write, kept by the rename), which is
    when its TTL starts; a folder's own mtime is not, since a running task creates it at start.
    """
    found = []
    for path in outputs.glob("*/*"):
        age = stale_s if path.name.startswith(".") else ttl_s
        if path.is_file() and path.stat().st_mtime + age < now:
            found.append(path)
    return found


#: How the MP4 writer names a video while it is being written (media.video.Mp4Writer).
PARTIAL_SUFFIX = ".partial.mp4"


def _partials_open() -> set[str] | None:
    """Partial videos some process of ours has open, from /proc; None where the system cannot tell."""
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
                if target.endswith(PARTIAL_SUFFIX):
                    held.add(target)
    return held


def remove_orphan_partials(storage: LocalStorage) -> int:
    """At start-up: delete the partial videos no live process is writing (left by a killed run).

    A writer keeps its partial file open until it renames it, so a partial nobody has open is a dead
    process's. Where /proc is missing every partial counts as dead: on one machine, anything present
    before this process starts its workers was written by a process that is gone.
    """
    held = _partials_open()
    removed = 0
    for path in (storage.root / "outputs").glob(f"*/.*{PARTIAL_SUFFIX}"):
        if held is not None and str(path) in held:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
        with contextlib.suppress(OSError):  # not empty: the task's finished video or another partial
            path.parent.rmdir()
    if removed:
        log.info("start-up: deleted %d partial video(s) left by a stopped process", removed)
    return removed


def sweep(storage: LocalStorage, settings: Settings, *, now: float | None = None) -> int:
    """Delete expired outputs and stale uploads; return how many things went."""
    now = time.time() if now is None else now
    files = _expired_outputs(storage.root / "outputs", settings.output_ttl_s, 2 * settings.task_timeout_s, now)
    for path in files:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: another output in it is still fresh
            path.parent.rmdir()
    uploads = _older_than(storage.root / "uploads", settings.upload_ttl_s, now)
    for folder in uploads:
        shutil.rmtree(folder, ignore_errors=True)
    if files or uploads:
        log.info("retention sweep deleted %d output file(s) and %d upload(s)", len(files), len(uploads))
    return len(files) + len(uploads)


class Sweeper:
    """Runs ``sweep`` every ``sweep_interval_s`` in a daemon thread, then ``also`` (the task service's own
    clean-up of what it records about the files, which this package cannot import)."""

    def __init__(self, storage: LocalStorage, settings: Settings, *, also: Callable[[], object] = lambda: None) -> None:
        self._storage, self._settings, self._also = storage, settings, also
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sweep(self._storage, self._settings)
                self._also()
            except Exception:  # a failed sweep must not end the loop; the next one tries again
                log.exception("retention sweep failed")
            self._stop.wait(self._settings.sweep_interval_s)
