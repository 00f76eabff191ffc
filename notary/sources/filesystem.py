"""Evidence from the local filesystem: one file, or a directory tree.

Names are handled as bytes end to end, so names that are not UTF-8 survive unchanged.
Symbolic links inside the tree are recorded as links (their target bytes are hashed) and
never followed; fifos, sockets and devices are skipped with a warning. A file is stat'ed
before and after it is read; one that changed meanwhile is read again, and recorded as
unstable with what was read last if it keeps changing.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from notary.errors import SourceError, SourcePathError
from notary.hashing import hash_fd, parallel_section
from notary.merkle import digest
from notary.record import Value, display_name, name_fields
from notary.sources import Entry, Hashed, Skipped, Status

logger = logging.getLogger(__name__)

DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY = 0.05
FILE_OPTIONS = frozenset({"retries", "retry_delay"})
PARALLEL_SIZE = 256 << 10

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


@dataclass
class _Snapshot:
    """One read of an item: what was hashed and whether it held still meanwhile."""

    content_digest: bytes
    size: int
    stable: bool
    fields: dict[str, Value] = field(default_factory=dict)


class _KindChangedError(Exception):
    """Internal: the path is no longer the kind of item it was listed as."""


class FileSource:
    """A file (its item is named by its basename) or a directory walked recursively.

    The given path itself is resolved if it is a symlink; links below it are not.
    Raises SourcePathError when the path does not exist or is neither a file nor a
    directory. `digest` is thread-safe.
    """

    serial_short_work = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retries: int = DEFAULT_RETRIES,
        retry_delay: float = DEFAULT_RETRY_DELAY,
    ) -> None:
        given = os.path.abspath(os.fsencode(path))
        self.description = os.fsdecode(given)
        self.retries = retries
        self.retry_delay = retry_delay
        mode = _stat_root(given)
        resolved = os.path.realpath(given)
        self._base = resolved
        self._single: bytes | None = None
        if stat.S_ISREG(mode):
            self._base = os.path.dirname(resolved)
            self._single = os.path.basename(given)
            self._single_target = resolved
        elif not stat.S_ISDIR(mode):
            raise SourcePathError(
                f"source {self.description}: neither a file nor a directory",
                path=self.description,
            )

    def __repr__(self) -> str:
        return f"FileSource({self.description!r})"

    def full_path(self, path: bytes) -> bytes:
        """Return the absolute path of an item from its relative path."""
        if self._single is not None and path == self._single:
            return self._single_target
        return self._base + b"/" + path

    # listing ------------------------------------------------------------------------

    def scan(self) -> Iterator[Entry | Skipped]:
        """Yield the items in ascending order of their path bytes.

        Raises SourceError when the top directory cannot be listed; a subdirectory
        that cannot be listed is yielded as an entry of kind ``directory`` with
        ``error`` set.
        """
        if self._single is not None:
            yield Entry(self._single, "file")
            return
        try:
            children = _list_directory(self._base)
        except OSError as exc:
            raise SourceError(
                f"source {self.description}: cannot list: {_reason(exc)}",
                path=self.description,
            ) from exc
        yield from self._walk(children)

    def _walk(self, top: list[os.DirEntry[bytes]]) -> Iterator[Entry | Skipped]:
        # An explicit stack, not recursion: trees may be deeper than Python's stack.
        stack = [(b"", iter(top))]
        while stack:
            prefix, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                continue
            path = prefix + child.name
            if child.is_dir(follow_symlinks=False):
                listed = self._list_subdirectory(path)
                if isinstance(listed, Entry):
                    yield listed
                else:
                    stack.append((path + b"/", iter(listed)))
            else:
                yield _classify(child, path)

    def _list_subdirectory(self, path: bytes) -> list[os.DirEntry[bytes]] | Entry:
        try:
            return _list_directory(self._base + b"/" + path)
        except OSError as exc:
            reason = f"cannot list directory: {_reason(exc)}"
            logger.warning("%s: %s", display_name(path), reason)
            return Entry(path, "directory", error=reason)

    # hashing ------------------------------------------------------------------------

    def digest(self, entry: Entry, algorithm: str) -> Hashed:
        """Hash one listed item; never raises for a problem with the item itself."""
        if entry.error is not None:
            return _failed(entry, entry.error)
        read = _read_link if entry.kind == "symlink" else _read_file
        path = self.full_path(entry.path)
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                snapshot = read(path, algorithm)
            except (OSError, _KindChangedError) as exc:
                return _failed(entry, _read_error(entry, exc), attempt)
            if snapshot.stable:
                return _hashed(entry, "ok", snapshot, attempt)
            if attempt < attempts:
                logger.warning(
                    "%s: changed while read (attempt %d of %d), reading again",
                    display_name(entry.path),
                    attempt,
                    attempts,
                )
                time.sleep(self.retry_delay * attempt)
        logger.warning(
            "%s: still changing after %d reads, recorded as unstable",
            display_name(entry.path),
            attempts,
        )
        return _hashed(entry, "unstable", snapshot, attempts)


def _stat_root(path: bytes) -> int:
    try:
        return os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise SourcePathError(
            f"source {os.fsdecode(path)}: no such file or directory",
            path=os.fsdecode(path),
            hint="check the path; it must exist on this machine",
        ) from exc
    except OSError as exc:
        raise SourcePathError(
            f"source {os.fsdecode(path)}: {_reason(exc)}", path=os.fsdecode(path)
        ) from exc


def _list_directory(path: bytes) -> list[os.DirEntry[bytes]]:
    with os.scandir(path) as found:
        return sorted(found, key=_order_key)


def _order_key(child: os.DirEntry[bytes]) -> bytes:
    # A directory sorts as "name/": then a depth-first walk yields whole relative paths
    # in ascending byte order ("a-b" < "a/c" although "a" < "a-b").
    return child.name + b"/" if child.is_dir(follow_symlinks=False) else child.name


def _classify(child: os.DirEntry[bytes], path: bytes) -> Entry | Skipped:
    if child.is_symlink():
        return Entry(path, "symlink")
    if child.is_file(follow_symlinks=False):
        return Entry(path, "file")
    kind = _special_kind(child)
    reason = f"{kind}: special files are not attested"
    logger.warning("%s: skipped (%s)", display_name(path), reason)
    return Skipped(path, reason)


def _special_kind(child: os.DirEntry[bytes]) -> str:
    try:
        mode = child.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        return f"unknown file type ({_reason(exc)})"
    return next((kind for test, kind in _SPECIAL_KINDS if test(mode)), "special file")


def _read_file(path: bytes, algorithm: str) -> _Snapshot:
    # TODO: O_NOFOLLOW guards only the last path component; a directory swapped for a
    # symlink between listing and hashing is followed. Opening relative to directory
    # descriptors kept from the walk would close that gap.
    fd = os.open(path, _OPEN_FLAGS)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise _KindChangedError("no longer a regular file")
        if before.st_size >= PARALLEL_SIZE:
            with parallel_section():
                content_digest, size = hash_fd(fd, algorithm, before.st_size)
        else:
            content_digest, size = hash_fd(fd, algorithm, before.st_size)
        # NOTE: both stats are of the open descriptor: what is attested is the file
        # that was opened; a rename over its path later is not a change of that file.
        after = os.fstat(fd)
    finally:
        os.close(fd)
    stable = size == after.st_size and _same(before, after)
    fields: dict[str, Value] = {"size": size, "mtime_ns": after.st_mtime_ns}
    return _Snapshot(content_digest, size, stable, fields)


def _read_link(path: bytes, algorithm: str) -> _Snapshot:
    before = os.lstat(path)
    if not stat.S_ISLNK(before.st_mode):
        raise _KindChangedError("no longer a symlink")
    target = os.readlink(path)
    after = os.lstat(path)
    fields: dict[str, Value] = {
        "size": len(target),
        "mtime_ns": after.st_mtime_ns,
        **name_fields("target", target),
    }
    stable = _same(before, after)
    return _Snapshot(digest(algorithm, target), len(target), stable, fields)


def _same(before: os.stat_result, after: os.stat_result) -> bool:
    return (
        before.st_ino == after.st_ino
        and before.st_dev == after.st_dev
        and before.st_size == after.st_size
        and before.st_mtime_ns == after.st_mtime_ns
    )


def _hashed(entry: Entry, status: Status, snapshot: _Snapshot, attempts: int) -> Hashed:
    return Hashed(
        entry=entry,
        status=status,
        content_digest=snapshot.content_digest,
        size=snapshot.size,
        fields=snapshot.fields,
        attempts=attempts,
    )


def _failed(entry: Entry, reason: str, attempts: int = 1) -> Hashed:
    logger.warning("%s: %s", display_name(entry.path), reason)
    return Hashed(entry, "error", None, 0, {}, error=reason, attempts=attempts)


def _read_error(entry: Entry, exc: OSError | _KindChangedError) -> str:
    if isinstance(exc, _KindChangedError):
        return f"changed after listing: {exc}"
    if isinstance(exc, FileNotFoundError):
        return "vanished after listing"
    if exc.errno == errno.ELOOP and entry.kind == "file":
        return "changed after listing: now a symlink"
    return f"cannot read: {_reason(exc)}"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
