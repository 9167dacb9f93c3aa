"""A long render's checkpoint: its finished segments, and the engine state that resumes after the last one.

A work folder holds, for one render:

- ``seg-00000.ts``, ``seg-00001.ts``, ...: one HLS segment per finished chunk, each written once (the live
  preview, and the pieces the final MP4 is joined from);
- ``state-00003.npz``: what the engine needs to go on after chunk 3 (named arrays, read back without pickle);
- ``checkpoint.json``: which job this is (a fingerprint of its inputs, and the seed), the segments so far and the
  state file that goes with them.

A chunk's segment and state are written first and ``checkpoint.json`` is replaced last, atomically, so a process
killed at any line leaves either the old or the new checkpoint, and each names only files that exist. A render
that finds a checkpoint for the same job goes on from it, on this machine or another: with shared storage
(``Mirror``) every file is also pushed there, and a worker that has none of them locally pulls them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from infinitetalk.engines.base import EngineState

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.json"
PLAYLIST = "preview.m3u8"
_VERSION = 1


def segment_name(index: int) -> str:
    return f"seg-{index:05d}.ts"


def _state_name(index: int) -> str:
    return f"state-{index:05d}.npz"


class Mirror(Protocol):
    """Shared storage that keeps a copy of the work folder, so another machine can go on with the render."""

    def push(self, path: Path) -> None:
        """Keep a copy of the file ``path`` under its name."""
        ...

    def pull(self, name: str, target: Path) -> bool:
        """Copy the stored file ``name`` to ``target``; False when there is none."""
        ...

    def remove(self, names: list[str]) -> None:
        """Forget these files; never raises."""
        ...


@dataclass(frozen=True)
class Segment:
    name: str
    start_frame: int
    frames: int
    duration_s: float


@dataclass
class Checkpoint:
    """What ``checkpoint.json`` says: the job, the chunks done, and where the state after the last one is."""

    fingerprint: str
    seed: int
    chunks: int  # in the whole job
    fps: int
    num_frames: int
    segments: list[Segment] = field(default_factory=list)
    state: str | None = None  # file name of the state after the last segment

    @property
    def frames_done(self) -> int:
        return sum(s.frames for s in self.segments)

    def to_json(self) -> str:
        return json.dumps({"version": _VERSION, **asdict(self)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        data = json.loads(text)
        if data.pop("version", None) != _VERSION:
            raise ValueError("unknown checkpoint version")
        data["segments"] = [Segment(**s) for s in data["segments"]]
        return cls(**data)


def fingerprint(*parts: object) -> str:
    """A digest of a job's inputs: numpy arrays by their bytes, anything else by its JSON."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str((part.dtype, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class WorkFolder:
    """The segments and checkpoint of one render in a local folder, optionally mirrored to shared storage."""

    def __init__(self, folder: Path, mirror: Mirror | None = None) -> None:
        self.folder = folder
        self.mirror = mirror

    def path(self, name: str) -> Path:
        return self.folder / name

    def local(self, name: str) -> Path:
        """The file ``name`` in this folder, pulled from shared storage first when this machine lacks it."""
        path = self.path(name)
        if not path.is_file() and not (self.mirror and self.mirror.pull(name, path)):
            raise FileNotFoundError(name)
        return path

    def load(self) -> tuple[Checkpoint, EngineState] | None:
        """The last checkpoint and its engine state; None when there is none or it cannot be read whole."""
        try:
            checkpoint = Checkpoint.from_json(self.local(CHECKPOINT).read_text())
            state: EngineState = {}
            if checkpoint.state:
                with np.load(self.local(checkpoint.state), allow_pickle=False) as saved:
                    state = {key: saved[key] for key in saved.files}
            for segment in checkpoint.segments:
                self.local(segment.name)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # a checkpoint we cannot read costs a fresh start, never the task
            log.warning("checkpoint in %s is unreadable (%s); starting over", self.folder.name, exc)
            return None
        return checkpoint, state

    def save(self, checkpoint: Checkpoint, segment: Segment, state: EngineState) -> None:
        """Record a finished chunk whose segment file is already in the folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        index = len(checkpoint.segments)
        state_name = _state_name(index)
        buffer = io.BytesIO()
        np.savez(buffer, **state)
        _write_atomic(self.path(state_name), buffer.getvalue())
        previous = checkpoint.state
        checkpoint.segments.append(segment)
        checkpoint.state = state_name
        _write_atomic(self.path(CHECKPOINT), checkpoint.to_json().encode())
        if self.mirror:  # the checkpoint last, so the stored one never names a file not yet stored
            for name in (segment.name, state_name, CHECKPOINT):
                self.mirror.push(self.path(name))
        if previous:
            self.path(previous).unlink(missing_ok=True)
            if self.mirror:
                self.mirror.remove([previous])

    def clear_checkpoint(self) -> None:
        """Forget how to resume (the render ended); the segments stay, for the preview, until retention."""
        names = [CHECKPOINT, *(p.name for p in self.folder.glob("state-*.npz"))]
        with contextlib.suppress(FileNotFoundError, OSError, ValueError, KeyError, TypeError):
            checkpoint = Checkpoint.from_json(self.local(CHECKPOINT).read_text())  # pulled: another machine's
            if checkpoint.state:
                names.append(checkpoint.state)
        for name in names:
            self.path(name).unlink(missing_ok=True)
        if self.mirror:
            self.mirror.remove(sorted(set(names)))

    def clear(self) -> None:
        """Forget everything: the checkpoint and the segments."""
        segments = [p.name for p in self.folder.glob("seg-*.ts")]
        self.clear_checkpoint()
        for name in segments:
            self.path(name).unlink(missing_ok=True)
        if self.mirror:
            self.mirror.remove(segments)
