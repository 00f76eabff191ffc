"""Evidence sources: what every kind of source (filesystem, S3, …) provides.

A source lists its items with `Source.scan` and hashes one item with `Source.digest`.
Item paths are exact bytes, relative to the source and ``/``-separated; `make_record`
turns a hashed item into its canonical metadata record (`notary.record`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast, runtime_checkable

from notary.record import RECORD_VERSION, Value, name_fields

Status = Literal["ok", "unstable", "error"]
S3_SCHEME = "s3://"


@dataclass(frozen=True, slots=True)
class Entry:
    """An item as listed.

    ``fields`` are record fields already known at listing (an S3 version id, an etag).
    ``error`` is set for something that was listed but cannot be examined (a directory
    that cannot be read); `Source.digest` then reports it with status ``error``.
    """

    path: bytes
    kind: str
    fields: dict[str, Value] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A listed path that is deliberately not attested (a fifo, a socket, a device)."""

    path: bytes
    reason: str


@dataclass(slots=True)
class Hashed:
    """The outcome of hashing one item.

    ``status`` is ``ok``; ``unstable`` when the item kept changing while read (then
    ``content_digest``, ``size`` and ``fields`` describe the bytes actually hashed in
    the last attempt); or ``error`` with ``error`` set and no digest. ``size`` is the
    number of bytes hashed; ``fields`` are the record fields learnt while hashing.
    """

    entry: Entry
    status: Status
    content_digest: bytes | None
    size: int
    fields: dict[str, Value]
    error: str | None = None
    attempts: int = 1

    @property
    def path(self) -> bytes:
        return self.entry.path


@runtime_checkable
class Source(Protocol):
    """A place evidence items come from.

    `scan` yields entries and skipped paths in ascending order of path bytes. `digest`
    must be thread-safe and report per-item problems as status ``error`` instead of
    raising; an exception from it aborts the whole hashing pass.
    """

    description: str

    def scan(self) -> Iterator[Entry | Skipped]: ...

    def digest(self, entry: Entry, algorithm: str) -> Hashed: ...


def make_record(hashed: Hashed, salt: str) -> dict[str, Value]:
    """Return the metadata record of a hashed item (encode it with `record.encode`).

    The record holds ``v``, ``kind``, the path, the listing's fields, the hashing's
    fields (these win on a clash) and ``salt`` (32 hex digits).
    """
    entry = hashed.entry
    return {
        "v": RECORD_VERSION,
        "kind": entry.kind,
        **name_fields("path", entry.path),
        **entry.fields,
        **hashed.fields,
        "salt": salt,
    }


def open_sources(paths: Sequence[str], **options: Any) -> list[Source]:
    """Return one source per path: ``s3://bucket/prefix`` or a local file or directory.

    ``options`` go to the S3 source; a filesystem source takes only ``retries`` and
    ``retry_delay`` from them. Raises SourcePathError for a local path that does not
    exist.
    """
    return [_open_source(path, options) for path in paths]


def _open_source(path: str, options: dict[str, Any]) -> Source:
    if path.startswith(S3_SCHEME):
        module = importlib.import_module("notary.sources.s3")
        return cast(Source, module.S3Source(path, **options))
    from notary.sources.filesystem import FILE_OPTIONS, FileSource

    return FileSource(path, **{k: v for k, v in options.items() if k in FILE_OPTIONS})
