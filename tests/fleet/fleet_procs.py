"""Fleet processes on loopback for the tests: Redis, API processes (`infinitetalk serve` with a broker URL)
and worker processes (`infinitetalk worker`), sharing one store and data folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from api_servers import Server, free_port, settings_for, wait_until


class Workers:
    """`infinitetalk worker --gpus 0,1,...`: a supervisor and one child process per GPU id."""

    def __init__(self, data_dir: Path, env: dict[str, str], gpus: str) -> None:
        self.data_dir, self.env, self.gpus = data_dir, env, gpus
        self.log_path = data_dir / f"workers-{gpus.replace(',', '_')}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, *, expect: int) -> Workers:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen([sys.executable, "-m", "infinitetalk.cli", "worker", "--gpus", self.gpus,
                                      "--data-dir", str(self.data_dir)], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        wait_until(lambda: len(self.live()) >= expect, timeout=120, every=0.2, what=f"{expect} live workers")
        return self

    def live(self) -> list[dict]:
        result = subprocess.run([sys.executable, "-m", "infinitetalk.cli", "workers", "--json", "--data-dir",
                                 str(self.data_dir)], env=self.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def holding(self, task_id: str) -> dict:
        """The worker running ``task_id``, read straight from the store (a CLI call per poll is too slow to
        catch a short task running)."""
        from infinitetalk.tasks.db import open_database
        from infinitetalk.tasks.models import WorkerRow

        db, sessions = open_database(settings_for(self.data_dir))

        def holder() -> dict | None:
            with sessions() as session:
                row = session.query(WorkerRow).filter_by(task_id=task_id, stopped_at=None).first()
                return {"id": row.id, "pid": row.pid} if row else None

        try:
            return wait_until(holder, timeout=120, every=0.1, what=f"a worker holding {task_id}")
        finally:
            db.dispose()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Redis:
    """redis-server on a free loopback port, its append-only file in a folder of its own, so a restart
    keeps the queue (as an operator's Redis should)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        import shutil

        import redis

        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing: run scripts/install.sh (it installs Debian's redis-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      str(self.folder), "--appendonly", "yes", "--save", ""],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, timeout=30, what="redis-server")
        client.close()
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.proc.wait(timeout=30)


def fleet_env(redis: Redis, **extra: str) -> dict[str, str]:
    return {"INFINITETALK_BROKER_URL": redis.url, "INFINITETALK_ENGINE": "preview",
            # small leases so a dead worker's task comes back within seconds in a test
            "INFINITETALK_HEARTBEAT_INTERVAL_S": "0.5", "INFINITETALK_STALE_AFTER_S": "4",
            "INFINITETALK_REAP_INTERVAL_S": "0.5", "INFINITETALK_REDISPATCH_AFTER_S": "10",
            "INFINITETALK_FETCH_ALLOW_HOSTS": '["localhost"]', **extra}


def start_api(data_dir: Path, env: dict[str, str]) -> Server:
    return Server(data_dir, env=env).start()

