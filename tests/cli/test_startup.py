"""Start-ups that cannot happen say so in one line and exit with code 3: a database, broker or bucket that never
answers within ``startup_wait_s`` (after one log line per retry), a taken port (before anything is migrated or
announced), missing weights (said once, before torch is imported, then waited for), GPU ids the machine does not have. And a server
started before its PostgreSQL accepts connections comes up once it does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_servers import free_port, wait_until
from services import postgres_server

pytestmark = pytest.mark.integration  # servers and workers as subprocesses, PostgreSQL

#: The exit code of a start that cannot happen (cli/errors.py EXIT_CANNOT_START).
CANNOT_START = 3


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infinitetalk.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    """The run ended with code 3 and one ``error`` line, with no traceback anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == CANNOT_START, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error ")]
    assert len(errors) == 1, output
    return errors[0]


def _nobody_listens() -> int:
    return free_port()


def test_a_database_that_never_answers(tmp_path: Path) -> None:
    port = _nobody_listens()
    url = f"postgresql+psycopg://infinitetalk:secret@127.0.0.1:{port}/infinitetalk"
    result = _run("serve", "--port", str(free_port()), "--data-dir", str(tmp_path),
                  env={"INFINITETALK_DATABASE_URL": url, "INFINITETALK_STARTUP_WAIT_S": "2"})
    line = _one_error_line(result)
    assert line.startswith(f"error unreachable: the database at postgresql+psycopg://infinitetalk:***@127.0.0.1:"
                           f"{port}/infinitetalk did not answer within 2 s ("), line
    assert line.endswith("check INFINITETALK_DATABASE_URL (or --database) and that the server is running"), line
    assert "secret" not in result.stderr
    retries = [line for line in result.stderr.splitlines() if "waiting for the database" in line]
    assert 1 <= len(retries) <= 3, result.stderr  # one line per retry: 1 s, then 1 s more (2 s in all)
    assert "infinitetalk serve: http" not in result.stderr  # nothing announced for a server that never ran


def test_a_broker_that_never_answers(tmp_path: Path) -> None:
    port = _nobody_listens()
    result = _run("worker", "--engine", "instant", "--broker", f"redis://127.0.0.1:{port}/0", "--data-dir",
                  str(tmp_path), env={"INFINITETALK_STARTUP_WAIT_S": "1"})
    line = _one_error_line(result)
    assert line.startswith(f"error unreachable: the broker at redis://127.0.0.1:{port}/0 did not answer within "
                           "1 s ("), line
    assert line.endswith("check INFINITETALK_BROKER_URL (or --broker) and that Redis is running"), line
    assert "waiting for the broker" in result.stderr


def test_a_bucket_that_never_answers(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_nobody_listens()}"
    env = {"INFINITETALK_STORAGE_URL": "s3://videos/here", "INFINITETALK_S3_ENDPOINT_URL": endpoint,
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "INFINITETALK_STARTUP_WAIT_S": "0"}
    result = _run("serve", "--port", str(free_port()), "--data-dir", str(tmp_path), env=env)
    line = _one_error_line(result)
    assert line.startswith(f"error unreachable: the bucket at s3://videos/here ({endpoint}) did not answer ("), line
    assert "INFINITETALK_S3_ENDPOINT_URL" in line


def test_a_taken_port_is_found_before_anything_happens(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _run("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    line = _one_error_line(result)
    assert line == (f"error port_unavailable: port {port} on 127.0.0.1 is taken by another program: stop it, or "
                    "give --port (INFINITETALK_PORT) another number"), line
    assert "infinitetalk serve: http" not in result.stderr
    assert not (tmp_path / "data").exists()  # no database made, nothing migrated


@pytest.mark.parametrize("made", [False, True], ids=["missing", "empty"])
def test_missing_weights_are_said_once_then_waited_for(tmp_path: Path, made: bool) -> None:
    """One line, before torch is imported; then the worker waits for the folder (compose and the supervisor would
    start an exiting worker again and again). It goes on once the weights are there; SIGTERM while waiting: 0."""
    weights = tmp_path / "weights"
    if made:  # as Docker makes the folder of a mount that is not there
        weights.mkdir()
    # run in this way to see what the command imported: torch must not be among it
    code = ("import runpy, sys\n"
            "sys.argv = ['infinitetalk', 'worker', '--weights', sys.argv[1], '--broker', 'redis://127.0.0.1:9/0',"
            " '--data-dir', sys.argv[2]]\n"
            "try:\n    runpy.run_module('infinitetalk.cli', run_name='__main__')\n"
            "finally:\n    print('torch imported' if 'torch' in sys.modules else 'no torch', flush=True)\n")
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code, str(weights), str(tmp_path / "data")], text=True,
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                env={**os.environ, "INFINITETALK_STARTUP_WAIT_S": "0"})
        try:
            line = wait_until(lambda: stderr.read_text().strip(), timeout=60, what="the weights line")
            what = f"the weights folder {weights} is empty" if made else f"no weights folder at {weights}"
            assert line == (f"waiting for weights: {what}: download them with `infinitetalk models download`, or "
                            "give --weights DIR (INFINITETALK_WEIGHTS_DIR) (looking again every 5 s)"), line
            assert proc.poll() is None  # waiting, not exiting to be started again
            if made:  # the weights arrive: it goes on, to the next thing it needs (here a broker nobody runs)
                (weights / "config.json").write_text("{}")
                assert proc.wait(timeout=30) == CANNOT_START
                assert "error unreachable: the broker" in stderr.read_text()
            else:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
                assert stderr.read_text().strip() == line  # said once, whatever the wait's length
                assert proc.stdout.read().strip() == "no torch"
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()


def test_gpu_ids_this_machine_does_not_have(tmp_path: Path) -> None:
    """The neural engine's ids must be real GPUs (a weights folder is there, so the GPUs are what is wrong)."""
    import torch

    count = torch.cuda.device_count()
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    result = _run("worker", "--gpus", f"0,{count + 3}", "--weights", str(weights), "--broker",
                  f"redis://127.0.0.1:{_nobody_listens()}/0", "--data-dir", str(tmp_path / "data"))
    line = _one_error_line(result)
    if count:
        have = "GPU 0" if count == 1 else f"GPUs 0-{count - 1}"
        assert line == f"error invalid_request: --gpus: no GPU {count + 3} here (this machine has {have})", line
    else:
        assert line == (f"error invalid_request: --gpus 0,{count + 3}: this machine has no CUDA GPU; leave --gpus out "
                        "to run one worker on the CPU (slow for the neural engine), or use the preview engine"), line
    assert not (tmp_path / "data").exists()  # refused before the store was opened


def test_a_server_started_before_postgresql_comes_up_once_it_does(tmp_path: Path) -> None:
    with postgres_server() as postgres:
        url = postgres.create_database("late")
        stop = postgres.run("pg_ctl", "-D", str(postgres.data), "-m", "fast", "-w", "stop")
        assert stop.returncode == 0, stop.stderr
        port = free_port()
        log_path = tmp_path / "serve.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "infinitetalk.cli", "serve", "--port", str(port), "--data-dir",
                 str(tmp_path / "data"), "--open"],
                env={**os.environ, "INFINITETALK_DATABASE_URL": url, "INFINITETALK_ENGINE": "instant"},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: "waiting for the database" in log_path.read_text(errors="replace")
                       or server.poll() is not None, timeout=30, what="the server waiting for PostgreSQL")
            assert server.poll() is None, log_path.read_text(errors="replace")
            start = postgres.run("pg_ctl", "-D", str(postgres.data), "-l", str(postgres.log), "-w", "start")
            assert start.returncode == 0, start.stderr

            def ready() -> bool:
                assert server.poll() is None, log_path.read_text(errors="replace")
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(ready, timeout=60, every=0.2, what="the server once PostgreSQL is up")
            assert "Traceback" not in log_path.read_text(errors="replace")
        finally:
            server.terminate()
            server.wait(timeout=30)
