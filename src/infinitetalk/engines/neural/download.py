"""Fetch Hugging Face Hub repositories into the weights folder, resuming where an interrupted run stopped.

``huggingface_hub`` lists the files and builds their URLs (``HF_ENDPOINT``, tokens and the Hub's revision
rules are its); the bytes are fetched here because its own downloader writes each file to a fresh
per-process temporary name (huggingface_hub 1.x-2.x, see its PR #4228), so a run that is killed, loses
its connection for longer than its retries or is stopped starts every unfinished file over: up to ~10 GB a
file for the Wan shards. Here each file grows in ``NAME.incomplete`` next to where it belongs, a rerun asks
the server for the rest with ``Range``, and the file takes its name only once its size (and, for the Hub's
large files, its SHA-256) is right. Files already in place with the right size are not fetched again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from infinitetalk.errors import EngineError

CHUNK = 1 << 20
RETRIES = 5


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # the Hub gives it for files stored in LFS/Xet (all the weights)


def list_files(repo: str, revision: str | None, patterns: list[str] | None,
               endpoint: str | None = None) -> tuple[str, list[RemoteFile]]:
    """The commit a revision (branch, tag, ``refs/pr/N`` or commit) points at, and its files."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils import filter_repo_objects

    api = HfApi(endpoint=endpoint)
    sha = api.repo_info(repo, revision=revision).sha
    entries = [e for e in api.list_repo_tree(repo, revision=sha, recursive=True) if isinstance(e, RepoFile)]
    wanted = set(filter_repo_objects([e.path for e in entries], allow_patterns=patterns))
    files = [RemoteFile(e.path, e.size, e.lfs.sha256 if e.lfs else None) for e in entries if e.path in wanted]
    return sha, files


def fetch_repo(repo: str, dest: Path, revision: str | None = None, patterns: list[str] | None = None,
               say: Callable[[str], None] = print, endpoint: str | None = None) -> None:
    """Every file of ``repo`` at ``revision`` (matching ``patterns``) under ``dest``, as laid out in the repo.

    ``endpoint``: the Hub's address (default: ``HF_ENDPOINT``, else huggingface.co).
    """
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    sha, files = list_files(repo, revision, patterns, endpoint)
    headers = build_hf_headers()
    with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0, read=120.0), headers=headers) as client:
        for f in files:
            target = dest / f.path
            if target.is_file() and target.stat().st_size == f.size:
                continue
            say(f"  {f.path} ({f.size / 2**30:.2f} GB)" if f.size >= 2**30 else f"  {f.path}")
            fetch_file(client, hf_hub_url(repo, f.path, revision=sha, endpoint=endpoint), f, target)


def fetch_file(client: httpx.Client, url: str, remote: RemoteFile, target: Path) -> None:
    """``url`` to ``target`` through ``target.incomplete``, resuming it; retries a dropped connection."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".incomplete")
    for attempt in range(RETRIES + 1):
        have = part.stat().st_size if part.exists() else 0
        if have > remote.size:  # not this file's bytes (the repo changed): start over
            part.unlink()
            have = 0
        if have < remote.size:
            try:
                _get(client, url, part, have)
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                if attempt == RETRIES:
                    raise EngineError(f"downloading {remote.path} failed after {RETRIES} retries ({exc}); run "
                                      "the same command again: it resumes where it stopped") from exc
                continue
        if part.stat().st_size == remote.size:
            break
    if part.stat().st_size != remote.size:
        raise EngineError(f"{remote.path}: got {part.stat().st_size} bytes, the Hub lists {remote.size}; run the "
                          "same command again")
    if remote.sha256 and _sha256(part) != remote.sha256:
        part.unlink()
        raise EngineError(f"{remote.path} arrived corrupted (its SHA-256 differs from the Hub's); run the same "
                          "command again to fetch it anew")
    os.replace(part, target)


def _get(client: httpx.Client, url: str, part: Path, have: int) -> None:
    headers = {"Range": f"bytes={have}-"} if have else {}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416:  # nothing left to send
            return
        response.raise_for_status()
        # a server that ignores Range answers 200 with the whole file: write it from the start
        mode = "ab" if have and response.status_code == 206 else "wb"
        with part.open(mode) as out:
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                out.flush()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * CHUNK):
            h.update(block)
    return h.hexdigest()
