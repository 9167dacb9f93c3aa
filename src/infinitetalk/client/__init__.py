"""A small Python SDK for the native API (httpx).

    client = Client("http://127.0.0.1:8000", api_key="itk_...")
    task = client.submit({"image": "https://.../face.jpg", "audio": "https://.../speech.mp3"})
    task = client.wait(task["id"])
    client.download(task, "out.mp4")
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx

TERMINAL = ("succeeded", "failed", "canceled")


class ApiError(Exception):
    """An error answer: HTTP ``status`` and the envelope's ``code``, ``message``, ``field``."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        self.status = response.status_code
        self.code: str = error.get("code", f"http_{response.status_code}")
        self.message: str = error.get("message", response.text[:200])
        self.field: str | None = error.get("field")
        retry_after = response.headers.get("retry-after")
        self.retry_after = int(retry_after) if retry_after and retry_after.isdigit() else None
        super().__init__(f"{self.status} {self.code}: {self.message}")


class Client:
    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        response = self._http.request(method, url, **kwargs)  # type: ignore[arg-type]
        if response.status_code >= 400:
            raise ApiError(response)
        return response

    # --- tasks ---
    def submit(self, payload: dict | None = None, *, files: dict[str, Path | list[Path]] | None = None,
               idempotency_key: str | None = None, wait: int | None = None) -> dict:
        """Create a task from JSON refs, or (``files``) a multipart upload; ``payload`` fills the rest."""
        headers = {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if wait:
            headers["Prefer"] = f"wait={wait}"
        if not files:
            return self._call("POST", "/v1/tasks", json=payload or {}, headers=headers).json()
        with ExitStack() as stack:
            parts = []
            for name, value in files.items():
                for path in value if isinstance(value, list) else [value]:
                    parts.append((name, (Path(path).name, stack.enter_context(open(path, "rb")))))
            data = {"request": json.dumps(payload)} if payload else None
            return self._call("POST", "/v1/tasks", files=parts, data=data, headers=headers).json()

    def get(self, task_id: str) -> dict:
        return self._call("GET", f"/v1/tasks/{task_id}").json()

    def list(self, *, limit: int = 20, cursor: str | None = None, status: str | None = None) -> dict:
        params = {k: v for k, v in {"limit": limit, "cursor": cursor, "status": status}.items() if v is not None}
        return self._call("GET", "/v1/tasks", params=params).json()

    def wait(self, task_id: str, *, timeout: float = 600.0) -> dict:
        """Block until the task ends (server-side waits of up to 30 s each); the last state on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            chunk = max(1, min(30, int(left)))
            task = self._call("GET", f"/v1/tasks/{task_id}", headers={"Prefer": f"wait={chunk}"},
                              timeout=chunk + 30).json()
            if task["status"] in TERMINAL or time.monotonic() >= deadline:
                return task

    def cancel(self, task_id: str) -> dict:
        return self._call("POST", f"/v1/tasks/{task_id}/cancel").json()

    def events(self, task_id: str) -> Iterator[tuple[str, dict]]:
        """(event, task) pairs from the server-sent event stream, until the task ends."""
        with self._http.stream("GET", f"/v1/tasks/{task_id}/events", timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response)
            event, data = "message", []
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield event, json.loads("\n".join(data))
                    event, data = "message", []

    # --- files, prices ---
    def upload(self, path: str | Path) -> dict:
        with open(path, "rb") as handle:
            return self._call("POST", "/v1/uploads", files={"file": (Path(path).name, handle)}).json()

    def estimate(self, payload: dict) -> dict:
        return self._call("POST", "/v1/estimate", json=payload).json()

    def download(self, task: dict | str, dest: str | Path) -> Path:
        """Save a succeeded task's video to ``dest``."""
        task = self.get(task) if isinstance(task, str) else task
        video = next((o for o in task.get("outputs") or [] if o.get("content_type", "video/mp4") == "video/mp4"), None)
        if video is None:  # a running task has only its live preview (preview.m3u8)
            raise ValueError(f"task {task['id']} has no video yet (status {task['status']})")
        dest = Path(dest)
        # follow_redirects: a server with S3 storage sends the bytes from a presigned URL of its bucket
        with self._http.stream("GET", video["url"], follow_redirects=True) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response)
            with open(dest, "wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return dest
