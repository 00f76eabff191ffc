"""The scheduler as operators run it: ``notary schedule run-due`` processes on one
database (SQLite and PostgreSQL), a counting TSA over HTTP, SeaweedFS for S3."""

from __future__ import annotations

import collections
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import tsp

from notary import period as periods
from notary import schedule
from notary.config import StreamConfig
from notary.store import Store
from notary.store.models import COMPLETE, HASHING
from notary.tsa.server import BuiltinTSA
from tests.services import SeaweedServer

pytestmark = pytest.mark.timeout(300)


@dataclass
class CountingTSA:
    """The built-in TSA behind a local HTTP server that counts requests per imprint."""

    url: str
    ca: Path
    requests: collections.Counter[str] = field(default_factory=collections.Counter)


@pytest.fixture(scope="module")
def counting_tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CountingTSA]:
    tsa = BuiltinTSA.open(tmp_path_factory.mktemp("tsa"))
    counter = CountingTSA(url="", ca=tsa.ca_path)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            imprint = tsp.TimeStampReq.load(body)["message_imprint"]["hashed_message"]
            with lock:
                counter.requests[bytes(imprint.native).hex()] += 1
            reply = tsa.respond(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    counter.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield counter
    finally:
        server.shutdown()
        server.server_close()


def _recent_periods(count: int) -> list[str]:
    """Return the last ``count`` periods due now under the default schedule."""
    default = StreamConfig(name="any", source="/")
    last = schedule.last_due_period(default, datetime.now(UTC))
    assert last is not None
    found = [last]
    while len(found) < count:
        found.insert(0, periods.previous(found[0]))
    return found


def _write_config(home: Path, tsa: CountingTSA, stream: dict[str, str]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    lines = [
        "[notary]",
        "workers = 1",
        "[[tsa]]",
        'name = "counting"',
        f'url = "{tsa.url}"',
        f'trust_roots = ["{tsa.ca}"]',
        "[[stream]]",
        *(f"{key} = {json.dumps(value)}" for key, value in stream.items()),
    ]
    (home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _environment(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "AWS_"))}
    env.update(NOTARY_HOME=str(home), NOTARY_DATABASE_URL=database_url, **extra)
    return env


def _run_due_command() -> list[str]:
    notary = Path(sys.executable).parent / "notary"
    return [str(notary), "schedule", "run-due", "--json"]


def _run_due(env: dict[str, str], expect: int = 0) -> dict[str, Any]:
    done = subprocess.run(
        _run_due_command(), env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == expect, done.stderr
    return dict(json.loads(done.stdout))


def _status(env: dict[str, str]) -> list[dict[str, Any]]:
    notary = Path(sys.executable).parent / "notary"
    command = [str(notary), "schedule", "status", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["streams"])


# three processes at once --------------------------------------------------------------


def _snapshots(root: Path, names: list[str]) -> None:
    for n, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(20):
            (folder / f"log-{i:03d}.txt").write_text(f"{name} line {i} {n}\n")


def test_run_due_three_processes_one_run_per_period_one_tsa_request_per_root(
    database_url: str, counting_tsa: CountingTSA, tmp_path: Path
) -> None:
    due = _recent_periods(3)
    _snapshots(tmp_path / "snap", due)
    home = tmp_path / "home"
    source = str(tmp_path / "snap") + "/{period:%Y-%m}/"
    _write_config(
        home, counting_tsa, {"name": "logs", "source": source, "first_period": due[0]}
    )
    env = _environment(home, database_url)
    Store(database_url).close()  # migrate once, as `notary init` would

    with ThreadPoolExecutor(3) as pool:
        outputs = list(pool.map(lambda _n: _run_due(env), range(3)))

    runs = Store(database_url).list_runs("logs")
    assert sorted(run.period for run in runs) == due
    assert {run.state for run in runs} == {COMPLETE}
    roots = [run.root.hex() for run in runs if run.root]
    assert [counting_tsa.requests[root] for root in roots] == [1, 1, 1]
    attested = [
        r["period"]
        for out in outputs
        for r in out["results"]
        if r["action"] == "attested"
    ]
    assert sorted(attested) == due
    chain = {run.period: run.previous_run_id for run in runs}
    by_period = {run.period: run.id for run in runs}
    assert chain[due[1]] == by_period[due[0]]
    assert chain[due[2]] == by_period[due[1]]


# a process killed while hashing ------------------------------------------------------

OBJECTS = 1200


@pytest.fixture(scope="module")
def archive(seaweedfs: SeaweedServer) -> tuple[str, str]:
    """A bucket whose last finished month holds OBJECTS small log objects."""
    client: Any = seaweedfs.client()
    bucket = f"archive-{os.getpid()}"
    client.create_bucket(Bucket=bucket)
    (period,) = _recent_periods(1)
    prefix = period.replace("-", "/")
    keys = [f"logs/{prefix}/part-{n:05d}.log" for n in range(OBJECTS)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k), keys))
    return bucket, period


def _wait_for_items(store: Store, minimum: int, process: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "run-due finished before it could be killed"
        runs = store.list_runs("archive")
        if (
            runs
            and runs[0].state == HASHING
            and store.item_count(runs[0].id or 0) >= minimum
        ):
            return runs[0].id or 0
        time.sleep(0.02)
    raise AssertionError("no items were stored within 120 s")


def _item_rows(store: Store, run_id: int) -> dict[bytes, tuple[int, bytes]]:
    return {
        bytes(item.path): (item.id or 0, bytes(item.content_digest or b""))
        for item in store.iter_items(run_id)
    }


def test_run_due_killed_mid_hashing_resumes_without_rehashing(
    database_url: str,
    counting_tsa: CountingTSA,
    s3_env: SeaweedServer,
    archive: tuple[str, str],
    tmp_path: Path,
) -> None:
    bucket, period = archive
    home = tmp_path / "home"
    stream = {
        "name": "archive",
        "source": f"s3://{bucket}/logs/{{period:%Y/%m}}/",
        "endpoint_url": s3_env.endpoint_url,
        "first_period": period,
    }
    _write_config(home, counting_tsa, stream)
    env = _environment(home, database_url, **s3_env.environment())
    store = Store(database_url)
    process = subprocess.Popen(
        _run_due_command(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = _wait_for_items(store, 1, process)
    finally:
        process.kill()
        process.communicate(timeout=30)
    before = _item_rows(store, run_id)

    output = _run_due(env)

    (result,) = output["results"]
    after = _item_rows(store, run_id)
    run = store.get_run(run_id)
    assert 0 < len(before) < OBJECTS
    assert (result["action"], result["state"]) == ("resumed", COMPLETE)
    assert result["hashed_now"] == OBJECTS - len(before)
    assert len(after) == run.item_count == OBJECTS
    assert {path: after[path] for path in before} == before
    assert counting_tsa.requests[(run.root or b"").hex()] == 1
    assert _verify_bundle(env, run_id, counting_tsa.ca, tmp_path) == "valid"


def _verify_bundle(env: dict[str, str], run_id: int, ca: Path, tmp_path: Path) -> str:
    """Export the run's bundle and verify every item's proof and the token offline."""
    notary = str(Path(sys.executable).parent / "notary")
    bundle = tmp_path / "bundle.zip"
    export = [notary, "export", str(run_id), "-o", str(bundle)]
    subprocess.run(export, env=env, check=True, capture_output=True, timeout=120)
    verify = [notary, "verify", str(bundle), "--trust-root", str(ca), "--json"]
    done = subprocess.run(verify, env=env, capture_output=True, text=True, timeout=120)
    return str(json.loads(done.stdout)["verdict"])


# the daemon ---------------------------------------------------------------------------


def test_schedule_run_daemon_catches_up_at_start_and_stops_on_sigterm(
    counting_tsa: CountingTSA, tmp_path: Path
) -> None:
    due = _recent_periods(2)
    _snapshots(tmp_path / "snap", due)
    home = tmp_path / "home"
    source = str(tmp_path / "snap") + "/{period:%Y-%m}/"
    stream = {"name": "daemon", "source": source, "first_period": due[0]}
    _write_config(home, counting_tsa, stream)
    database_url = f"sqlite:///{tmp_path / 'notary.db'}"
    env = _environment(home, database_url)
    notary = str(Path(sys.executable).parent / "notary")
    daemon = subprocess.Popen(
        [notary, "-v", "schedule", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        runs = _wait_for_complete_runs(Store(database_url), "daemon", 2, daemon)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
    finally:
        daemon.kill()
        _, stderr = daemon.communicate(timeout=30)

    assert sorted(run.period for run in runs) == due
    assert code == 0, stderr
    assert "job stream:daemon" in stderr


def _wait_for_complete_runs(
    store: Store, stream: str, count: int, process: subprocess.Popen[str]
) -> list[Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the daemon exited early"
        runs = [run for run in store.list_runs(stream) if run.state == COMPLETE]
        if len(runs) >= count:
            return runs
        time.sleep(0.1)
    raise AssertionError(f"{count} complete runs not seen within 120 s")


def test_schedule_run_daemon_sigterm_while_hashing_exits_0_promptly(
    counting_tsa: CountingTSA,
    s3_env: SeaweedServer,
    archive: tuple[str, str],
    tmp_path: Path,
) -> None:
    bucket, period = archive
    home = tmp_path / "home"
    stream = {
        "name": "archive",
        "source": f"s3://{bucket}/logs/{{period:%Y/%m}}/",
        "endpoint_url": s3_env.endpoint_url,
        "first_period": period,
    }
    _write_config(home, counting_tsa, stream)
    database_url = f"sqlite:///{tmp_path / 'notary.db'}"
    env = _environment(home, database_url, **s3_env.environment())
    store = Store(database_url)
    notary = str(Path(sys.executable).parent / "notary")
    daemon = subprocess.Popen(
        [notary, "-v", "schedule", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = _wait_for_items(store, 1, daemon)
        daemon.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = daemon.wait(timeout=30)
        stopped_in = time.monotonic() - started
    finally:
        daemon.kill()
        _, stderr = daemon.communicate(timeout=30)
    hashed = store.item_count(run_id)

    output = _run_due(env)

    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert stopped_in < 15
    assert store.get_run(run_id).state == COMPLETE
    assert output["results"][0]["hashed_now"] == OBJECTS - hashed


def test_run_due_missing_folder_fails_and_blocks_then_empty_folder_completes(
    counting_tsa: CountingTSA, tmp_path: Path
) -> None:
    (period,) = _recent_periods(1)
    home = tmp_path / "home"
    source = str(tmp_path / "snap") + "/{period:%Y-%m}/"
    _write_config(
        home, counting_tsa, {"name": "logs", "source": source, "first_period": period}
    )
    env = _environment(home, f"sqlite:///{tmp_path / 'notary.db'}")

    missing = _run_due(env, expect=3)
    (blocked,) = _status(env)
    (tmp_path / "snap" / period).mkdir(parents=True)
    empty = _run_due(env)

    assert [(r["period"], r["action"]) for r in missing["results"]] == [
        (period, "failed")
    ]
    folder = f"{tmp_path}/snap/{period}/"
    assert blocked["blocked"] == f"{period}: source {folder} does not exist"
    (result,) = empty["results"]
    assert (result["action"], result["state"], result["items"]) == (
        "attested",
        COMPLETE,
        0,
    )
