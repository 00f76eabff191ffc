from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from notary import hashing, record
from notary.errors import SourceError, SourcePathError
from notary.sources import Entry, Hashed, Skipped, make_record, open_sources
from notary.sources.filesystem import FileSource

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def write(path: Path, data: bytes = b"data") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def scan_entries(source: FileSource) -> dict[bytes, Entry]:
    return {e.path: e for e in source.scan() if isinstance(e, Entry)}


def hash_one(source: FileSource, path: bytes, algorithm: str = "sha256") -> Hashed:
    return source.digest(scan_entries(source)[path], algorithm)


# listing ------------------------------------------------------------------------------


def test_scan_nested_names_ascending_path_bytes(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    names = [b"b", b"a-c", b"a/b", b"a/c/d", b"A", b"a0", b"\xff\xfe", b"a/\xe9"]
    for name in names:
        write(root / os.fsdecode(name))

    found = [e.path for e in FileSource(root).scan()]

    assert found == sorted(names)
    assert found == [e.path for e in FileSource(root).scan()]


def test_scan_single_file_named_by_basename(tmp_path: Path) -> None:
    path = write(tmp_path / "dir" / "report.csv", b"x,y\n")

    (entry,) = FileSource(path).scan()
    hashed = FileSource(path).digest(entry, "sha256")  # type: ignore[arg-type]

    assert entry == Entry(b"report.csv", "file")
    assert hashed.content_digest == hashlib.sha256(b"x,y\n").digest()


def test_scan_missing_path_raises_source_path_error(tmp_path: Path) -> None:
    with pytest.raises(SourcePathError, match="no such file or directory"):
        FileSource(tmp_path / "absent")


def test_scan_root_fifo_raises_source_path_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")

    with pytest.raises(SourcePathError, match="neither a file nor a directory"):
        FileSource(tmp_path / "pipe")


def test_scan_unlistable_top_directory_raises_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = FileSource(tmp_path)
    suffix = os.fsencode(tmp_path)
    monkeypatch.setattr(
        "notary.sources.filesystem.os.scandir", _deny_for(os.scandir, suffix)
    )

    with pytest.raises(SourceError, match="cannot list: Permission denied"):
        list(source.scan())


def test_scan_fifo_and_socket_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "a.log")
    os.mkfifo(tmp_path / "fifo")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        caplog.set_level(logging.WARNING, logger="notary.sources.filesystem")

        found = list(FileSource(tmp_path).scan())

    assert found == [
        Entry(b"a.log", "file"),
        Skipped(b"fifo", "fifo: special files are not attested"),
        Skipped(b"sock", "socket: special files are not attested"),
    ]
    assert "fifo: skipped (fifo" in caplog.text


def test_scan_unlistable_subdirectory_reported_as_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "locked" / "secret")
    write(tmp_path / "open" / "file")
    source = FileSource(tmp_path)
    monkeypatch.setattr(
        "notary.sources.filesystem.os.scandir", _deny_for(os.scandir, b"/locked")
    )

    entries = list(source.scan())
    hashed = source.digest(entries[0], "sha256")  # type: ignore[arg-type]

    assert [e.path for e in entries] == [b"locked", b"open/file"]
    assert hashed.status == "error"
    assert hashed.error == "cannot list directory: Permission denied"


def _denied(path: Any, *args: Any) -> Any:
    raise PermissionError(errno.EACCES, "Permission denied", path)


def _deny_for(real: Any, suffix: bytes) -> Any:
    """Return ``real`` that fails with EACCES for paths ending in ``suffix``."""

    def call(path: Any, *args: Any) -> Any:
        if os.fsencode(path).endswith(suffix):
            return _denied(path)
        return real(path, *args)

    return call


# hashing ------------------------------------------------------------------------------


def test_digest_empty_file_is_sha256_of_nothing(tmp_path: Path) -> None:
    write(tmp_path / "empty", b"")

    hashed = hash_one(FileSource(tmp_path), b"empty")

    assert hashed.status == "ok"
    assert hashed.content_digest is not None
    assert hashed.content_digest.hex() == EMPTY_SHA256
    assert hashed.size == 0
    assert hashed.fields["size"] == 0


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_digest_algorithm_selectable(tmp_path: Path, algorithm: str) -> None:
    data = os.urandom(3 << 20)
    write(tmp_path / "big", data)

    hashed = hash_one(FileSource(tmp_path), b"big", algorithm)

    assert hashed.content_digest == hashlib.new(algorithm, data).digest()
    assert hashed.size == len(data)


def test_digest_file_fields_size_and_mtime(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"12345")
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))

    hashed = hash_one(FileSource(tmp_path), b"f")

    assert hashed.fields == {"size": 5, "mtime_ns": 1_700_000_000_123_456_789}


def test_digest_symlink_outside_recorded_not_followed(tmp_path: Path) -> None:
    write(tmp_path / "outside", b"must not be hashed")
    root = tmp_path / "evidence"
    root.mkdir()
    (root / "link").symlink_to("../outside")
    (root / "dirlink").symlink_to("..")

    source = FileSource(root)
    entries = list(source.scan())
    hashed = source.digest(entries[1], "sha256")  # type: ignore[arg-type]

    assert entries == [Entry(b"dirlink", "symlink"), Entry(b"link", "symlink")]
    assert hashed.status == "ok"
    assert hashed.content_digest == hashlib.sha256(b"../outside").digest()
    assert hashed.fields["target"] == "../outside"
    assert hashed.size == hashed.fields["size"] == len(b"../outside")


def test_digest_symlink_non_utf8_target_stored_as_hex(tmp_path: Path) -> None:
    os.symlink(b"caf\xe9", os.fsencode(tmp_path / "link"))

    hashed = hash_one(FileSource(tmp_path), b"link")

    assert hashed.fields["target_hex"] == "636166e9"
    assert "target" not in hashed.fields


def test_digest_unreadable_file_status_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "secret")
    source = FileSource(tmp_path)
    (entry,) = source.scan()
    monkeypatch.setattr(
        "notary.sources.filesystem.os.open", _deny_for(os.open, b"/secret")
    )

    hashed = source.digest(entry, "sha256")  # type: ignore[arg-type]

    assert hashed.status == "error"
    assert hashed.error == "cannot read: Permission denied"
    assert hashed.content_digest is None


def test_digest_file_vanished_after_listing_status_error(tmp_path: Path) -> None:
    path = write(tmp_path / "gone")
    source = FileSource(tmp_path)
    (entry,) = source.scan()
    path.unlink()

    hashed = source.digest(entry, "sha256")  # type: ignore[arg-type]

    assert (hashed.status, hashed.error) == ("error", "vanished after listing")


def test_digest_file_replaced_by_symlink_status_error(tmp_path: Path) -> None:
    path = write(tmp_path / "swap")
    source = FileSource(tmp_path)
    (entry,) = source.scan()
    path.unlink()
    path.symlink_to("/etc/hostname")

    hashed = source.digest(entry, "sha256")  # type: ignore[arg-type]

    assert (hashed.status, hashed.error) == (
        "error",
        "changed after listing: now a symlink",
    )


def _growing_reader(path: Path, grow_times: int) -> Any:
    """Return a hash_fd stand-in that appends to ``path`` during its first reads."""
    real = hashing.hash_fd
    calls = {"n": 0}

    def hash_fd(fd: int, algorithm: str, size: int | None = None) -> Any:
        result = real(fd, algorithm, size)
        calls["n"] += 1
        if calls["n"] <= grow_times:
            with path.open("ab") as log:
                log.write(b"appended while read\n")
        return result

    return hash_fd


def test_digest_file_grown_while_read_recorded_unstable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "app.log", b"first line\n")
    source = FileSource(tmp_path, retry_delay=0)
    (entry,) = source.scan()
    monkeypatch.setattr(
        "notary.sources.filesystem.hash_fd", _growing_reader(path, grow_times=99)
    )

    hashed = source.digest(entry, "sha256")  # type: ignore[arg-type]

    hashed_bytes = b"first line\n" + b"appended while read\n" * 2
    assert hashed.status == "unstable"
    assert hashed.attempts == 3
    assert hashed.content_digest == hashlib.sha256(hashed_bytes).digest()
    assert hashed.size == hashed.fields["size"] == len(hashed_bytes)
    assert "changed while read (attempt 1 of 3)" in caplog.text


def test_digest_file_grown_by_background_writer_recorded_unstable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "app.log", b"start\n")
    reading, written, done = threading.Event(), threading.Event(), threading.Event()
    real = hashing.hash_fd

    def writer() -> None:
        while reading.wait(timeout=10) and not done.is_set():
            reading.clear()
            with path.open("ab") as log:
                log.write(b"line written during the read\n")
            written.set()

    def slow_hash_fd(fd: int, algorithm: str, size: int | None = None) -> Any:
        result = real(fd, algorithm, size)
        written.clear()
        reading.set()
        assert written.wait(timeout=10)
        return result

    thread = threading.Thread(target=writer)
    thread.start()
    source = FileSource(tmp_path, retry_delay=0)
    (entry,) = source.scan()
    monkeypatch.setattr("notary.sources.filesystem.hash_fd", slow_hash_fd)
    try:
        hashed = source.digest(entry, "sha256")  # type: ignore[arg-type]
    finally:
        done.set()
        reading.set()
        thread.join()

    assert (hashed.status, hashed.attempts) == ("unstable", 3)
    assert hashed.size < path.stat().st_size


def test_digest_file_grown_once_retried_then_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "app.log", b"first line\n")
    source = FileSource(tmp_path, retry_delay=0)
    (entry,) = source.scan()
    monkeypatch.setattr(
        "notary.sources.filesystem.hash_fd", _growing_reader(path, grow_times=1)
    )

    hashed = source.digest(entry, "sha256")  # type: ignore[arg-type]

    assert (hashed.status, hashed.attempts) == ("ok", 2)
    assert hashed.content_digest == hashlib.sha256(path.read_bytes()).digest()


def test_digest_file_grown_no_retries_unstable_after_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "app.log", b"x")
    source = FileSource(tmp_path, retries=0)
    (entry,) = source.scan()
    monkeypatch.setattr(
        "notary.sources.filesystem.hash_fd", _growing_reader(path, grow_times=1)
    )

    hashed = source.digest(entry, "sha256")  # type: ignore[arg-type]

    assert (hashed.status, hashed.attempts) == ("unstable", 1)
    assert hashed.content_digest == hashlib.sha256(b"x").digest()


# records and dispatch ---------------------------------------------------------------


def test_make_record_file_and_symlink_fields(tmp_path: Path) -> None:
    write(tmp_path / "f\xe9", b"abc")
    (tmp_path / "l").symlink_to("f\xe9")
    source = FileSource(tmp_path)
    hashed = [source.digest(e, "sha256") for e in scan_entries(source).values()]

    records = [make_record(h, "ab" * 16) for h in hashed]

    assert records[0] == {
        "v": 1,
        "kind": "file",
        "path": "f\xe9",
        "size": 3,
        "mtime_ns": hashed[0].fields["mtime_ns"],
        "salt": "ab" * 16,
    }
    assert records[1]["kind"] == "symlink"
    assert records[1]["target"] == "f\xe9"
    assert record.decode(record.encode(records[1])) == records[1]


def test_open_sources_dispatches_s3_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    class FakeS3Source:
        description = "fake"

        def __init__(self, spec: str, **options: Any) -> None:
            calls.append((spec, options))

    fake = types.ModuleType("notary.sources.s3")
    fake.S3Source = FakeS3Source  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "notary.sources.s3", fake)

    sources = open_sources(
        ["s3://bucket/prefix", str(tmp_path)], retries=5, endpoint_url="http://x"
    )

    assert isinstance(sources[0], FakeS3Source)
    assert calls == [("s3://bucket/prefix", {"retries": 5, "endpoint_url": "http://x"})]
    assert isinstance(sources[1], FileSource)
    assert sources[1].retries == 5
