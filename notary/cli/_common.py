"""Helpers shared by the command modules: JSON output, settings, progress."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

from notary import config


def print_json(document: Any) -> None:
    """Write one JSON document to stdout."""
    json.dump(document, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def load_settings(home: str | None = None) -> config.Settings:
    """Load settings from ``home`` (a flag) or the default data directory."""
    return config.load(Path(home).expanduser() if home else None)


def is_terminal() -> bool:
    return sys.stderr.isatty()


def printable(text: str) -> str:
    """Return ``text`` safe for a terminal: control and format characters escaped.

    Names and messages may come from bundles or file names made by someone else; a
    carriage return or an escape sequence must never be able to rewrite what a
    reader sees (such as the verdict line). C0/C1 controls, DEL and Unicode format
    characters (bidi overrides) become ``\\xNN`` or ``\\uNNNN``.
    """
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"\\x{code:02x}"
    if code > 0x7F and unicodedata.category(char) in {"Cf", "Cs", "Zl", "Zp"}:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return char
