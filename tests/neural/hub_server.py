"""A local server speaking the part of the Hugging Face Hub's HTTP API that ``huggingface_hub`` downloads with.

``repo_info`` (``/api/models/{repo}/revision/{rev}``), the recursive tree listing (``/api/models/{repo}/tree/{rev}``)
and file downloads (``/{repo}/resolve/{rev}/{path}``, HEAD and GET, with ``Range``), each at a branch, a commit
hash or ``refs/pr/N``. Files are served from folders on disk, one per repository revision. A file can be
set to stall after some bytes (``stall``), so a test can stop a client mid-download and check it resumes.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


@dataclass
class Revision:
    folder: Path
    sha: str

    def files(self) -> dict[str, Path]:
        return {p.relative_to(self.folder).as_posix(): p for p in sorted(self.folder.rglob("*")) if p.is_file()}


@dataclass
class Hub:
    #: repo id -> revision name (a branch, or "refs/pr/1") -> files
    repos: dict[str, dict[str, Revision]] = field(default_factory=dict)
    #: (repo, path) -> bytes after which a GET stops sending and waits (once), until ``release`` is set
    stall: dict[tuple[str, str], int] = field(default_factory=dict)
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    #: (repo, path) -> bytes after which a GET drops the connection (once): a network failure mid-file
    drop: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (repo, path) -> the SHA-256 the listing gives instead of the file's own (bytes corrupted on the way)
    listed_sha256: dict[tuple[str, str], str] = field(default_factory=dict)
    #: every GET of a file: (repo, path, the Range header or None)
    gets: list[tuple[str, str, str | None]] = field(default_factory=list)

    def add(self, repo: str, revision: str, folder: Path) -> Revision:
        sha = hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
        rev = Revision(folder, sha)
        self.repos.setdefault(repo, {})[revision] = rev
        return rev

    def find(self, repo: str, revision: str) -> Revision | None:
        revisions = self.repos.get(repo, {})
        if revision in revisions:
            return revisions[revision]
        return next((r for r in revisions.values() if r.sha == revision), None)


def _etag(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(name: str, path: Path) -> dict:
    """A tree entry as the Hub lists it: weights files are LFS objects with their SHA-256."""
    entry = {"type": "file", "oid": hashlib.sha1(path.read_bytes()).hexdigest(), "size": path.stat().st_size,
             "path": name}
    if path.suffix in (".safetensors", ".pth", ".bin"):
        entry["lfs"] = {"oid": _etag(path), "size": path.stat().st_size, "pointerSize": 134}
    return entry


def make_app(hub: Hub) -> FastAPI:
    app = FastAPI()

    def not_found(what: str) -> Response:
        # the Hub's error header: huggingface_hub maps it to RepositoryNotFound / RevisionNotFound / EntryNotFound
        code = {"repo": "RepoNotFound", "revision": "RevisionNotFound", "entry": "EntryNotFound"}[what]
        return JSONResponse({"error": f"{what} not found"}, status_code=404, headers={"X-Error-Code": code})

    def split(raw: str) -> tuple[str, str, str] | None:
        """``owner/name/KIND/rest`` with the revision percent-encoded in ``rest`` (``refs%2Fpr%2F1``)."""
        m = re.fullmatch(r"([^/]+/[^/]+)/([^/]+)(?:/(.*))?", raw)
        return (m[1], m[2], m[3] or "") if m else None

    @app.api_route("/{rest:path}", methods=["GET", "HEAD"])
    async def route(request: Request, rest: str) -> Response:  # noqa: ARG001 - the raw path is parsed below
        raw = request.scope["raw_path"].decode().lstrip("/")
        if raw.startswith("api/models/"):
            api_path = raw.removeprefix("api/models/").partition("?")[0]
            if api_path.count("/") == 1:  # repo_info without a revision: the main branch
                api_path += "/revision/main"
            parts = split(api_path)
            if parts is None:
                return not_found("repo")
            repo, kind, tail = parts
            revision_text, _, sub = tail.partition("/")
            if repo not in hub.repos:
                return not_found("repo")
            rev = hub.find(repo, unquote(revision_text) or "main")
            if rev is None:
                return not_found("revision")
            files = rev.files()
            if kind == "revision":
                return JSONResponse({"id": repo, "modelId": repo, "sha": rev.sha, "private": False,
                                     "siblings": [{"rfilename": name} for name in files]})
            if kind == "tree":
                prefix = unquote(sub)
                entries = [_entry(name, p) for name, p in files.items() if name.startswith(prefix)]
                for e in entries:
                    if (repo, e["path"]) in hub.listed_sha256:
                        e["lfs"]["oid"] = hub.listed_sha256[(repo, e["path"])]
                return JSONResponse(entries)
            return not_found("entry")
        parts = split(raw)
        if parts is None or parts[1] != "resolve":
            return not_found("repo")
        repo, _, tail = parts
        revision_text, _, name = tail.partition("/")
        if repo not in hub.repos:
            return not_found("repo")
        rev = hub.find(repo, unquote(revision_text))
        if rev is None:
            return not_found("revision")
        path = rev.files().get(unquote(name))
        if path is None:
            return not_found("entry")
        size = path.stat().st_size
        headers = {"X-Repo-Commit": rev.sha, "ETag": f'"{_etag(path)}"', "Accept-Ranges": "bytes"}
        if request.method == "HEAD":
            return Response(headers={**headers, "Content-Length": str(size)})
        wanted = request.headers.get("range")
        hub.gets.append((repo, unquote(name), wanted))
        start = 0
        if wanted and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)):
            start = int(m[1])
        data = path.read_bytes()[start:]
        stall_at = hub.stall.pop((repo, unquote(name)), None)
        drop_at = hub.drop.pop((repo, unquote(name)), None)

        def body():  # noqa: ANN202
            if drop_at is not None:
                yield data[:drop_at]
                raise ConnectionResetError("the test's dropped connection")
            if stall_at is None:
                yield data
                return
            yield data[:stall_at]
            hub.stalled.set()
            while not hub.release.wait(0.05):  # a client stopped now has the first bytes only
                pass
            yield data[stall_at:]

        status = 206 if start else 200
        extra = {"Content-Range": f"bytes {start}-{size - 1}/{size}"} if start else {}
        return StreamingResponse(body(), status_code=status,
                                 headers={**headers, **extra, "Content-Length": str(size - start)},
                                 media_type="application/octet-stream")

    return app


class Server:
    """The app on a free loopback port, in a thread."""

    def __init__(self, hub: Hub) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(make_app(hub), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the local hub server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
