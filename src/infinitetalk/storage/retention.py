"""The retention sweep: delete outputs past their TTL and uploads no task used."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from infinitetalk.config import Settings
from infinitetalk.storage.local import LocalStorage

log = logging.getLogger(__name__)


def _older_than(folder: Path, age_s: float, now: float) -> list[Path]:
    if not folder.is_dir():
        return []
    return [entry for entry in folder.iterdir() if entry.stat().st_mtime + age_s < now]


def sweep(storage: LocalStorage, settings: Settings, *, now: float | None = None) -> int:
    """Delete expired outputs and stale uploads; return how many folders went.

    An output folder's mtime is when the task finished (render renames the file into it at the end),
    which is the moment its TTL counts from.
    """
    now = time.time() if now is None else now
    expired = _older_than(storage.root / "outputs", settings.output_ttl_s, now)
    expired += _older_than(storage.root / "uploads", settings.upload_ttl_s, now)
    for folder in expired:
        shutil.rmtree(folder, ignore_errors=True)
    if expired:
        log.info("retention sweep deleted %d expired folder(s)", len(expired))
    return len(expired)


class Sweeper:
    """Runs ``sweep`` every ``sweep_interval_s`` in a daemon thread."""

    def __init__(self, storage: LocalStorage, settings: Settings) -> None:
        self._storage, self._settings = storage, settings
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
            except Exception:  # a failed sweep must not end the loop; the next one tries again
                log.exception("retention sweep failed")
            self._stop.wait(self._settings.sweep_interval_s)
