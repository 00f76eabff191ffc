from __future__ import annotations

import hashlib
import io
import os
import subprocess
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from notary import hashing
from notary.errors import UnsupportedAlgorithmError
from notary.hashing import CHUNK_SIZE, Progress, hash_entries, parallel_section
from notary.sources import Entry, Hashed, Skipped
from notary.sources.filesystem import PARALLEL_SIZE, FileSource
from tests.conftest import require_tool


class FakeSource:
    """A source whose items are names; digest runs ``work`` and hashes the name."""

    description = "fake"

    def __init__(self, work: object = None, serial: bool = False) -> None:
        self.work = work
        self.serial_short_work = serial

    def scan(self) -> Iterator[Entry | Skipped]:
        yield from ()

    def digest(self, entry: Entry, algorithm: str) -> Hashed:
        if callable(self.work):
            self.work(entry)
        content = hashlib.new(algorithm, entry.path).digest()
        return Hashed(entry, "ok", content, len(entry.path), {})


def entries(count: int) -> list[Entry]:
    return [Entry(b"item-%d" % n, "object") for n in range(count)]


def as_dict(results: object) -> dict[bytes, tuple[str, bytes | None, int]]:
    assert not isinstance(results, dict)
    return {
        r.entry.path: (r.status, r.content_digest, r.size)
        for r in results  # type: ignore[attr-defined]
    }


# streaming ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5]
)
def test_hash_file_chunk_boundaries_equal_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)

    result = hashing.hash_file(tmp_path / "f", "sha256")

    assert result == (hashlib.sha256(data).digest(), size)


def test_hash_fd_size_given_stops_after_size(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"0123456789")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        result = hashing.hash_fd(fd, "sha256", 10)
    finally:
        os.close(fd)

    assert result == (hashlib.sha256(b"0123456789").digest(), 10)


def test_hash_stream_and_chunks_equal_hashlib() -> None:
    data = os.urandom(2 * CHUNK_SIZE + 3)
    chunks = [data[:7], data[7:CHUNK_SIZE], data[CHUNK_SIZE:]]

    from_stream = hashing.hash_stream(io.BytesIO(data), "sha512")
    from_chunks = hashing.hash_chunks(chunks, "sha512")

    assert from_stream == from_chunks == (hashlib.sha512(data).digest(), len(data))


def test_hash_entries_unknown_algorithm_raises() -> None:
    with pytest.raises(UnsupportedAlgorithmError, match="'md5': not supported"):
        hash_entries(FakeSource(), entries(1), "md5", 2)


# many items ---------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    """Small files, files around the parallel threshold, large files and a link."""
    for n in range(300):
        (root / "small" / str(n % 7)).mkdir(parents=True, exist_ok=True)
        (root / "small" / str(n % 7) / f"f{n}").write_bytes(os.urandom(n * 13))
    for n, size in enumerate([PARALLEL_SIZE - 1, PARALLEL_SIZE, 3 * CHUNK_SIZE + 1]):
        (root / f"large{n}").write_bytes(os.urandom(size))
    (root / "link").symlink_to("large0")


@pytest.mark.parametrize("workers", [2, 4, 7])
def test_hash_entries_parallel_equals_serial(tmp_path: Path, workers: int) -> None:
    make_tree(tmp_path)
    source = FileSource(tmp_path)
    listed = [e for e in source.scan() if isinstance(e, Entry)]

    serial = as_dict(hash_entries(source, listed, "sha256", 1))
    parallel = as_dict(hash_entries(source, iter(listed), "sha256", workers))

    assert parallel == serial
    assert len(serial) == 304
    big = (tmp_path / "large2").read_bytes()
    assert serial[b"large2"] == ("ok", hashlib.sha256(big).digest(), len(big))


def test_hash_entries_picker_routes_each_entry_to_its_source() -> None:
    sources = {b"item-1": FakeSource(serial=True), b"item-2": FakeSource()}
    picked: list[bytes] = []

    def pick(entry: Entry) -> FakeSource:
        picked.append(entry.path)
        return sources.get(entry.path, FakeSource())

    results = as_dict(hash_entries(pick, entries(50), "sha384", 3))

    assert sorted(picked) == sorted(e.path for e in entries(50))
    assert results[b"item-1"][1] == hashlib.sha384(b"item-1").digest()


def test_hash_entries_source_exception_raised_to_consumer() -> None:
    def fail(entry: Entry) -> None:
        if entry.path == b"item-40":
            raise RuntimeError("bucket credentials rejected")

    with pytest.raises(RuntimeError, match="bucket credentials rejected"):
        list(hash_entries(FakeSource(fail), entries(100), "sha256", 4))


def test_hash_entries_consumer_stops_early_workers_exit() -> None:
    before = threading.active_count()

    results = hash_entries(FakeSource(), entries(10_000), "sha256", 4)
    first = next(results)
    assert isinstance(results, Generator)
    results.close()

    assert first.status == "ok"
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_hash_entries_plain_source_items_run_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=10)

    results = list(
        hash_entries(FakeSource(lambda e: barrier.wait()), entries(4), "sha256", 2)
    )

    assert len(results) == 4


def test_hash_entries_serial_source_short_work_one_at_a_time() -> None:
    running = {"now": 0, "most": 0}
    lock = threading.Lock()

    def work(entry: Entry) -> None:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.001)
        with lock:
            running["now"] -= 1

    results = list(
        hash_entries(FakeSource(work, serial=True), entries(60), "sha256", 4)
    )

    assert len(results) == 60
    assert running["most"] == 1


def test_hash_entries_serial_source_parallel_section_runs_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=10)

    def work(entry: Entry) -> None:
        with parallel_section():
            barrier.wait()

    source = FakeSource(work, serial=True)

    assert len(list(hash_entries(source, entries(4), "sha256", 2))) == 4


def test_parallel_section_outside_pool_does_nothing() -> None:
    with parallel_section():
        result = hashing.hash_chunks([b"a"], "sha256")

    assert result == (hashlib.sha256(b"a").digest(), 1)


def test_hash_entries_advances_progress() -> None:
    progress = Progress.disabled()

    list(hash_entries(FakeSource(), entries(10), "sha256", 2, progress))

    assert (progress.total_files, progress.files, progress.bytes) == (10, 10, 60)


# progress -----------------------------------------------------------------------------


def test_progress_not_a_terminal_draws_nothing() -> None:
    stream = io.StringIO()
    progress = Progress(stream)

    progress.start(3)
    progress.advance(1, 100)
    progress.finish()

    assert not progress.enabled
    assert stream.getvalue() == ""


def test_progress_enabled_draws_counts_bytes_rate_eta() -> None:
    stream = io.StringIO()
    progress = Progress(stream, enabled=True, interval=0)

    progress.start(4, 4 << 20)
    progress.advance(1, 1 << 20)
    line = stream.getvalue()

    assert line.startswith("\rhashing [#####...............] 1/4 files  1.0 MiB  ")
    assert " MB/s  ETA 0:" in line


def test_progress_redraws_at_most_every_interval() -> None:
    stream = io.StringIO()
    progress = Progress(stream, enabled=True, interval=60)
    progress.start(None)

    for _ in range(1000):
        progress.advance(1, 10)
    progress.finish()

    assert stream.getvalue().count("\r") == 2
    assert "1000 files" in stream.getvalue()
    assert stream.getvalue().endswith("\n")


def test_progress_unknown_total_has_no_eta() -> None:
    progress = Progress.disabled()

    progress.advance(5, 0)

    assert "ETA" not in progress.line()
    assert progress.line().startswith("hashing [????????????????????] 5 files")


# large and real input -----------------------------------------------------------------


@pytest.mark.slow
def test_hash_file_sparse_over_4gib_equals_sha256sum(tmp_path: Path) -> None:
    sha256sum = require_tool("sha256sum")
    path = tmp_path / "sparse"
    with path.open("wb") as f:
        f.write(b"head")
        f.seek((4 << 30) + 4096)
        f.write(b"tail")
    source = FileSource(path)

    (hashed,) = hash_entries(source, list(source.scan()), "sha256", 2)  # type: ignore[arg-type]
    expected = subprocess.run(
        [sha256sum, str(path)], check=True, capture_output=True, text=True
    ).stdout.split()[0]

    assert hashed.size == (4 << 30) + 4100
    assert hashed.content_digest is not None
    assert hashed.content_digest.hex() == expected


def test_hash_entries_shared_logs_equal_hashlib(shared_data: Path) -> None:
    logs = shared_data / "logs"
    source = FileSource(logs)
    listed = [e for e in source.scan() if isinstance(e, Entry)]

    results = list(hash_entries(source, listed, "sha256", 4))

    assert len(results) == len(listed) > 0
    for hashed in results:
        data = (logs / os.fsdecode(hashed.entry.path)).read_bytes()
        assert hashed.status == "ok"
        assert hashed.content_digest == hashlib.sha256(data).digest()
