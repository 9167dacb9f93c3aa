"""deploy/compose.yaml, checked two ways (issue 21).

- Debian's ``docker-compose`` (a real Compose implementation; ``config`` needs no daemon) reads and resolves it,
  and the resolved file holds what a first ``up`` needs: health-gated start order, restart policies, pinned
  images, the worker's shm_size, an API image without the neural extra, output links clients can follow.
- Its api and worker services' own commands and environments run as local processes, on PostgreSQL, Redis and
  SeaweedFS (in place of MinIO) started here; compose's names (postgres, redis, minio) are mapped to loopback by
  rewriting the URLs, as compose's DNS would. A task submitted there gives a video link that plain httpx, with
  no special name resolution, downloads."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest
import yaml
from api_servers import FileServer, bind_store, free_port, make_key, wait_until
from services import PostgresServer, S3Server

from infinitetalk.client import Client

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


def _resolved() -> dict:
    """``docker-compose config``: the file as Compose reads it (anchors, defaults and all), or the test fails."""
    program = shutil.which("docker-compose")
    if program is None:
        pytest.fail("docker-compose is missing: apt-get install docker-compose (scripts/install.sh does)",
                    pytrace=False)
    result = subprocess.run([program, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def compose() -> dict:
    return _resolved()


def test_compose_validates_and_starts_in_order(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"api", "worker", "postgres", "redis", "minio", "minio-bucket"}
    needs = {"postgres": "service_healthy", "redis": "service_healthy",
             "minio-bucket": "service_completed_successfully"}
    for name in ("api", "worker"):
        assert {k: v["condition"] for k, v in services[name]["depends_on"].items()} == needs, name
        assert services[name]["restart"] == "unless-stopped", name
    assert services["minio-bucket"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    for name in ("postgres", "redis", "minio", "api"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
        assert services[name]["restart"] == "unless-stopped", name
    for name, service in services.items():
        if "build" not in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image} by tag"


def test_compose_images_and_links(compose: dict) -> None:
    services = compose["services"]
    assert services["api"]["build"]["target"] == "api"
    assert services["worker"]["build"]["target"] == "worker"
    dockerfile = (COMPOSE_FILE.parent / "Dockerfile").read_text()
    api_stage = dockerfile.split("AS api", 1)[1].split("FROM", 1)[0]
    assert "pip install" in api_stage and "neural" not in api_stage and "torch" not in api_stage
    assert _bytes(services["worker"]["shm_size"]) >= 1024**3
    # MinIO is not published, so links must not send clients to it
    assert "ports" not in services["minio"]
    assert services["api"]["environment"]["INFINITETALK_S3_LINKS"] == "proxy"
    ignored = (COMPOSE_FILE.parents[1] / ".dockerignore").read_text().split()
    assert {".venv", ".git"} <= set(ignored)


def _bytes(size: int | str) -> int:
    """Compose's sizes: bytes (Compose v2 writes them) or "8gb" (docker-compose 1.x keeps what was written)."""
    text = str(size).lower().rstrip("b")
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    return int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)


# --- compose's services as local processes ---------------------------------------------------------------------

def _local(env: dict[str, str], *, postgres_url: str, redis_url: str, s3: S3Server, api_port: int,
           data_dir: Path) -> dict[str, str]:
    """Compose's environment with its service names mapped to the local servers (and this machine's paths)."""
    rewritten = {}
    for name, value in env.items():
        value = str(value)
        value = value.replace("postgresql+psycopg://infinitetalk:infinitetalk@postgres:5432/infinitetalk",
                              postgres_url)
        value = value.replace("redis://redis:6379/0", redis_url)
        value = value.replace("http://minio:9000", s3.endpoint_url)
        value = value.replace("http://localhost:8000", f"http://localhost:{api_port}")
        rewritten[name] = value
    # SeaweedFS's credentials in place of MinIO's root user; the container's folders are this test's
    rewritten.update(AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key,
                     AWS_DEFAULT_REGION=s3.region, INFINITETALK_DATA_DIR=str(data_dir),
                     INFINITETALK_WEIGHTS_DIR=str(data_dir / "weights"),
                     INFINITETALK_FETCH_ALLOW_HOSTS='["localhost"]')
    return {"PATH": "/usr/bin:/bin", "HOME": str(data_dir), **rewritten}


def _command(command: list[str], api_port: int) -> list[str]:
    args = [str(arg) for arg in command]
    return [sys.executable, "-m", "infinitetalk.cli", *[str(api_port) if arg == "8000" else arg for arg in args]]


def _make_bucket(s3: S3Server, bucket: str) -> None:
    """What the minio-bucket job does (``mc mb --ignore-existing``)."""
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name=s3.region)
    try:
        client.create_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


class _Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def compose_fleet(compose: dict, tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer,
                  redis_url: str, s3_endpoint: S3Server) -> Iterator[tuple[str, Path]]:
    """compose's api and worker on loopback; yields the API's public URL and its data dir."""
    services = compose["services"]
    port = free_port()
    database = postgres.create_database(f"compose_{secrets.token_hex(4)}")
    storage = services["api"]["environment"]["INFINITETALK_STORAGE_URL"]
    _make_bucket(s3_endpoint, storage.removeprefix("s3://").split("/", 1)[0])
    running: list[_Process] = []
    try:
        for name in ("api", "worker"):
            data_dir = tmp_path_factory.mktemp(f"compose-{name}")
            env = _local(services[name]["environment"], postgres_url=database, redis_url=redis_url,
                         s3=s3_endpoint, api_port=port, data_dir=data_dir)
            if name == "worker":
                env["INFINITETALK_ENGINE"] = "instant"  # the test's stand-in for the GPU's neural engine
            running.append(_Process(_command(services[name]["command"], port), env, data_dir / f"{name}.log"))
            if name == "api":
                api_dir = data_dir
                bind_store(api_dir, database)  # make_key writes the key to this store

                def ready() -> bool:
                    if running[0].proc.poll() is not None:
                        raise AssertionError(running[0].log.read_text(errors="replace")[-3000:])
                    try:
                        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                    except httpx.HTTPError:
                        return False

                wait_until(ready, timeout=60, every=0.2, what="compose's api")
        yield f"http://localhost:{port}", api_dir
    finally:
        for process in reversed(running):
            process.stop()


@pytest.mark.slow
def test_a_video_link_from_compose_downloads_outside(compose_fleet: tuple[str, Path], tmp_path: Path,
                                                    short_speech_wav: Path, grace_hopper_path: Path) -> None:
    public_url, api_dir = compose_fleet
    root = tmp_path / "inputs"
    root.mkdir()
    for source in (short_speech_wav, grace_hopper_path):
        (root / source.name).write_bytes(source.read_bytes())
    key = make_key(api_dir, "compose")["key"]
    with FileServer(root) as files, Client(public_url, api_key=key, timeout=60) as client:
        task = client.submit({"image": files.url("grace_hopper.jpg"), "audio": files.url("short.wav")})
        done = client.wait(task["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]
    url = next(output["url"] for output in done["outputs"] if output["name"] == "video.mp4")
    assert url.startswith(f"{public_url}/v1/files/")
    answer = httpx.get(url, follow_redirects=True, timeout=60)  # a client outside: no name but localhost
    assert answer.status_code == 200, answer.text[:300]
    # "minio" stands at a loopback port here, but outside compose nothing answers for it: every address the
    # client was sent to must be the API's public one
    visited = {f"{hop.url.scheme}://{hop.url.host}:{hop.url.port}" for hop in [*answer.history, answer]}
    assert visited == {public_url}
    assert answer.content[4:8] == b"ftyp" and answer.headers["content-type"] == "video/mp4"
