"""Canonical metadata records of evidence items.

FROZEN FORMAT (record version 1). A record's bytes are hashed into the tree, so any
change to this encoding needs a new record version; verifiers must keep reading
version 1.

A record is a flat JSON object whose values are strings, integers, booleans or null,
serialised canonically: keys sorted by code point, no whitespace, ASCII only (every
non-ASCII character written as a ``\\uXXXX`` escape). Names are never normalised: NFC
and NFD forms of one name give different records. A name (``path``, ``target``,
``key``) whose bytes are valid UTF-8 is stored as text under its own key; otherwise its
exact bytes are stored as lowercase hex under ``<name>_hex`` and the text key is
absent. So two different items never encode to the same bytes, and the exact name
bytes are always recoverable.

Common keys: ``v`` (record version, 1), ``kind`` (``file``, ``symlink``, ``object``),
``path`` or ``path_hex`` (relative, ``/``-separated), ``size`` (bytes hashed), ``salt``
(32 lowercase hex digits, random per item). Kinds add their own keys, for example
``mtime_ns`` for files, ``target`` for symlinks, ``version_id`` and ``etag`` for
objects.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

RECORD_VERSION = 1
SALT_BYTES = 16

Value = str | int | bool | None


def new_salt() -> str:
    """Return a fresh random salt as 32 lowercase hex digits."""
    return os.urandom(SALT_BYTES).hex()


def name_fields(key: str, name: bytes) -> dict[str, Value]:
    """Return ``{key: text}`` for UTF-8 names, else ``{key + "_hex": hex}``."""
    try:
        return {key: name.decode("utf-8", errors="strict")}
    except UnicodeDecodeError:
        return {f"{key}_hex": name.hex()}


def name_bytes(record: Mapping[str, Value], key: str = "path") -> bytes:
    """Return the exact bytes of a name stored by `name_fields`.

    Raises KeyError when the record holds neither form.
    """
    text = record.get(key)
    if isinstance(text, str):
        return text.encode("utf-8")
    raw = record[f"{key}_hex"]
    if not isinstance(raw, str):
        raise KeyError(f"{key}_hex")
    return bytes.fromhex(raw)


def display_name(name: bytes) -> str:
    """Return a printable form of a name; undecodable bytes appear as ``\\xNN``."""
    return name.decode("utf-8", errors="backslashreplace")


def encode(record: Mapping[str, Value]) -> bytes:
    """Serialise a record canonically (see the module docstring).

    Raises TypeError for values that are not str, int, bool or None.
    """
    for key, value in record.items():
        if value is not None and not isinstance(value, str | int | bool):
            raise TypeError(
                f"record field {key!r}: unsupported type {type(value).__name__}"
            )
    text = json.dumps(
        dict(record), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return text.encode("ascii")


def decode(data: bytes | str) -> dict[str, Value]:
    """Parse a record's bytes; raises ValueError when they are not canonical."""
    raw = data.encode("ascii") if isinstance(data, str) else data
    parsed = json.loads(raw)
    if not isinstance(parsed, dict):
        raise ValueError("metadata record is not a JSON object")
    try:
        canonical = encode(parsed)
    except TypeError as exc:
        raise ValueError(f"metadata record is not flat: {exc}") from exc
    if canonical != raw:
        raise ValueError("metadata record is not in canonical form")
    return parsed
