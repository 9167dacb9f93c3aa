"""Fleet processes on loopback for the tests: API processes (`infinitetalk serve` with a broker URL)
and worker processes (`infinitetalk worker`), sharing one store and data folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from api_servers import Server, settings_for, wait_until
from services import RedisServer


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
        from infinitetalk.runtime.fleet import live_workers
        from infinitetalk.tasks.db import open_database

        db, sessions = open_database(settings_for(self.data_dir))

        def holder() -> dict | None:
            with sessions() as session:
                row = next((row for row in live_workers(session) if row.task_id == task_id), None)
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


def fleet_env(redis: RedisServer, **extra: str) -> dict[str, str]:
    return {"INFINITETALK_BROKER_URL": redis.url, "INFINITETALK_ENGINE": "preview",
            # small leases so a dead worker's task comes back within seconds in a test
            "INFINITETALK_HEARTBEAT_INTERVAL_S": "0.5", "INFINITETALK_STALE_AFTER_S": "4",
            "INFINITETALK_REAP_INTERVAL_S": "0.5", "INFINITETALK_REDISPATCH_AFTER_S": "10",
            "INFINITETALK_FETCH_ALLOW_HOSTS": '["localhost"]', **extra}


def start_api(data_dir: Path, env: dict[str, str]) -> Server:
    return Server(data_dir, env=env).start()

