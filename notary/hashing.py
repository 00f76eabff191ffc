"""Streaming digests in constant memory, parallel hashing of many items, a progress bar.

Files are read in 1 MiB chunks into a buffer reused per thread. hashlib releases the GIL
while it digests a chunk, so threads are enough to use several cores on large files.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import BinaryIO, TextIO

from notary.merkle import hasher
from notary.sources import Entry, Hashed, Source

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
DEFAULT_WORKERS = 4
BATCH_ITEMS = 64
BATCH_BYTES = 8 << 20
BATCH_SECONDS = 0.2
BATON_SECONDS = 0.02
QUEUED_BATCHES_PER_WORKER = 4

_local = threading.local()


def _chunk_buffer() -> memoryview:
    buffer: memoryview | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = memoryview(bytearray(CHUNK_SIZE))
    return buffer


def hash_fd(fd: int, algorithm: str, size: int | None = None) -> tuple[bytes, int]:
    """Digest what is readable from ``fd``; return (digest, bytes read).

    Reads from the current offset up to EOF, or stops once ``size`` bytes are read when
    a size is given (the caller then compares it with a later stat, saving one read
    call per small file). Raises OSError from the read.
    """
    h = hasher(algorithm)()
    update = h.update
    buffer = _chunk_buffer()
    buffers = [buffer]
    readv = os.readv
    total = 0
    while count := readv(fd, buffers):
        update(buffer[:count])
        total += count
        if total == size:
            break
    return h.digest(), total


def hash_file(
    path: str | bytes | os.PathLike[str], algorithm: str
) -> tuple[bytes, int]:
    """Digest a file's bytes (symlinks followed); return (digest, size)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return hash_fd(fd, algorithm)
    finally:
        os.close(fd)


def hash_stream(stream: BinaryIO, algorithm: str) -> tuple[bytes, int]:
    """Digest a binary stream up to EOF; return (digest, bytes read)."""
    h = hasher(algorithm)()
    total = 0
    while chunk := stream.read(CHUNK_SIZE):
        h.update(chunk)
        total += len(chunk)
    return h.digest(), total


def hash_chunks(chunks: Iterable[bytes], algorithm: str) -> tuple[bytes, int]:
    """Digest a sequence of byte chunks (e.g. an HTTP body); return (digest, size)."""
    h = hasher(algorithm)()
    total = 0
    for chunk in chunks:
        h.update(chunk)
        total += len(chunk)
    return h.digest(), total


# many items ---------------------------------------------------------------------------

SourceOfEntry = Callable[[Entry], Source]


def hash_entries(
    source_of_entry: SourceOfEntry | Source,
    entries: Iterable[Entry],
    algorithm: str,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
) -> Iterator[Hashed]:
    """Hash entries with ``workers`` threads; yield each result as it is ready.

    The order of results is not the order of ``entries``. Memory stays bounded: entries
    are pulled lazily and few results wait to be consumed. ``workers`` <= 1 hashes in
    the calling thread. ``progress`` is advanced here; starting and finishing it is the
    caller's job. An exception from a source (a bug, or a failure that concerns every
    item) stops the workers and is raised here. Raises UnsupportedAlgorithmError at
    once for an unknown algorithm.
    """
    hasher(algorithm)
    pick = _picker(source_of_entry)
    progress = progress or Progress.disabled()
    if isinstance(entries, Sized) and progress.total_files is None:
        progress.start(len(entries))
    if workers <= 1:
        results: Iterable[Hashed] = (pick(e).digest(e, algorithm) for e in entries)
    else:
        results = _Pool(pick, entries, algorithm, workers)
    return _advancing(results, progress)


def _advancing(results: Iterable[Hashed], progress: Progress) -> Iterator[Hashed]:
    for hashed in results:
        progress.advance(1, hashed.size)
        yield hashed


def _picker(source_of_entry: SourceOfEntry | Source) -> SourceOfEntry:
    if isinstance(source_of_entry, Source):
        source = source_of_entry
        return lambda entry: source
    return source_of_entry


@contextmanager
def parallel_section() -> Iterator[None]:
    """Let other hash workers go on while the enclosed long, GIL-free work runs.

    Items of a source whose ``serial_short_work`` attribute is true are hashed by one
    worker thread at a time, because threads contending for the GIL over many tiny items
    are slower than one thread. Such a source wraps its long work (digesting a large
    file) in this block so that large items still use every core. Outside a worker
    thread it does nothing.
    """
    _release_baton()
    yield


def _release_baton() -> None:
    baton: threading.Lock | None = getattr(_local, "baton", None)
    if baton is not None:
        _local.baton = None
        baton.release()


class _Stopped(Exception):
    """Internal: the consumer went away while a worker was waiting."""


class _Pool:
    """Worker threads pulling entries one at a time and handing results over in batches.

    Pulling single entries spreads large and small items over the threads; batching the
    results keeps the per-item cost low for many small files. The baton serialises the
    short work of sources that ask for it (see `parallel_section`).
    """

    def __init__(
        self,
        pick: SourceOfEntry,
        entries: Iterable[Entry],
        algorithm: str,
        workers: int,
    ) -> None:
        self._pick = pick
        self._entries = iter(entries)
        self._algorithm = algorithm
        self._workers = workers
        self._lock = threading.Lock()
        self._baton = threading.Lock()
        self._waiting = 0
        self._stop = threading.Event()
        self._slots = threading.Semaphore(workers * QUEUED_BATCHES_PER_WORKER)
        self._results: queue.SimpleQueue[list[Hashed] | BaseException | None] = (
            queue.SimpleQueue()
        )

    def __iter__(self) -> Iterator[Hashed]:
        for n in range(self._workers):
            name = f"notary-hash-{n}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        running = self._workers
        try:
            while running:
                result = self._results.get()
                if result is None:
                    running -= 1
                elif isinstance(result, BaseException):
                    raise result
                else:
                    self._slots.release()
                    yield from result
        finally:
            # NOTE: workers still busy finish their current item in the background.
            self._stop.set()

    def _work(self) -> None:
        try:
            self._hash_until_done()
        except _Stopped:
            pass
        except BaseException as exc:
            self._stop.set()
            self._results.put(exc)
        finally:
            _release_baton()
            self._results.put(None)

    def _hash_until_done(self) -> None:
        batch: list[Hashed] = []
        size = 0
        started = time.monotonic()
        while (entry := self._next_entry()) is not None:
            source = self._pick(entry)
            self._take_turn(bool(getattr(source, "serial_short_work", False)))
            hashed = source.digest(entry, self._algorithm)
            batch.append(hashed)
            size += hashed.size
            full = len(batch) >= BATCH_ITEMS or size >= BATCH_BYTES
            if full or time.monotonic() - started >= BATCH_SECONDS:
                self._hand_over(batch)
                batch, size, started = [], 0, time.monotonic()
        if batch:
            self._hand_over(batch)

    def _next_entry(self) -> Entry | None:
        with self._lock:
            if self._stop.is_set():
                return None
            return next(self._entries, None)

    def _take_turn(self, serial: bool) -> None:
        held = getattr(_local, "baton", None) is not None
        if held and not serial:
            _release_baton()
        elif serial and not held:
            self._count_waiting(1)
            try:
                self._wait_for(self._baton)
            finally:
                self._count_waiting(-1)
            _local.baton = self._baton
            _local.baton_since = time.monotonic()

    def _count_waiting(self, change: int) -> None:
        with self._lock:
            self._waiting += change

    def _hand_over(self, batch: list[Hashed]) -> None:
        if self._waiting and self._held_long():
            # Give a waiting worker the baton now and then, so that the large item it
            # holds gets hashed in parallel instead of after all the small ones.
            _release_baton()
            time.sleep(0)
        self._wait_for(self._slots)
        self._results.put(batch)

    @staticmethod
    def _held_long() -> bool:
        if getattr(_local, "baton", None) is None:
            return False
        return bool(time.monotonic() - _local.baton_since >= BATON_SECONDS)

    def _wait_for(self, lock: threading.Lock | threading.Semaphore) -> None:
        while not lock.acquire(timeout=0.1):
            if self._stop.is_set():
                raise _Stopped


# progress -----------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr: files done/total, bytes, rate and ETA.

    Shown only when ``enabled`` (by default: when the stream is a terminal). Redraws at
    most every ``interval`` seconds. Not thread-safe: advance it from one thread.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        label: str = "hashing",
        interval: float = 0.1,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self._stream) if enabled is None else enabled
        self.label = label
        self.interval = interval
        self.total_files: int | None = None
        self.total_bytes: int | None = None
        self.files = 0
        self.bytes = 0
        self._started = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    @classmethod
    def disabled(cls) -> Progress:
        return cls(enabled=False)

    def start(
        self, total_files: int | None = None, total_bytes: int | None = None
    ) -> None:
        """Reset the counters; a total of None or 0 bytes means unknown."""
        self.total_files = total_files
        self.total_bytes = total_bytes or None
        self.files = self.bytes = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def advance(self, files: int = 1, nbytes: int = 0) -> None:
        self.files += files
        self.bytes += nbytes
        if self.enabled and time.monotonic() - self._drawn >= self.interval:
            self._draw()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0

    def line(self) -> str:
        """Return the text of the bar as it would be drawn now."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self.bytes / elapsed
        done = (
            f"{self.files}/{self.total_files}" if self.total_files else f"{self.files}"
        )
        parts = [
            f"{self.label} {_bar(self._fraction())} {done} files",
            _format_bytes(self.bytes),
            f"{rate / 1e6:.1f} MB/s",
        ]
        eta = self._eta(elapsed)
        if eta is not None:
            parts.append(f"ETA {_format_seconds(eta)}")
        return "  ".join(parts)

    def _fraction(self) -> float | None:
        if self.total_bytes:
            return min(self.bytes / self.total_bytes, 1.0)
        if self.total_files:
            return min(self.files / self.total_files, 1.0)
        return None

    def _eta(self, elapsed: float) -> float | None:
        fraction = self._fraction()
        if not fraction:
            return None
        return elapsed * (1 - fraction) / fraction

    def _draw(self) -> None:
        text = self.line()
        padding = " " * max(self._width - len(text), 0)
        self._stream.write(f"\r{text}{padding}")
        self._stream.flush()
        self._width = len(text)
        self._drawn = time.monotonic()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _bar(fraction: float | None, width: int = 20) -> str:
    if fraction is None:
        return "[" + "?" * width + "]"
    filled = int(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{count} B"
        size /= 1024
    return f"{size:.1f} TiB"


def _format_seconds(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
