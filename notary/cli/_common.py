"""Helpers shared by the command modules: JSON output, settings, progress."""

from __future__ import annotations

import json
import sys
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
