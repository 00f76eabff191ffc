"""Fixtures shared by every test.

Tests that need a tool or data that is absent skip with the reason; when the environment
variable ``NOTARY_TEST_STRICT`` is set (CI sets it), such a skip becomes a failure, so
CI always runs every test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(
    os.environ.get("NOTARY_SHARED_DATA", REPO.parent / "shared" / "data")
)


def require(condition: bool, reason: str) -> None:
    """Skip the calling test with ``reason`` unless ``condition``; in CI, fail."""
    if condition:
        return
    if os.environ.get("NOTARY_TEST_STRICT"):
        pytest.fail(f"required for this test: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Return the path of executable ``name``, or skip/fail as `require` does."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed")
    assert path is not None
    return path


@pytest.fixture
def shared_data() -> Path:
    """The real public data set beside the repository (logs, TSA tokens)."""
    require(SHARED_DATA.is_dir(), f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Clear NOTARY_* variables so the developer's settings never leak into a test."""
    for name in list(os.environ):
        if name.startswith("NOTARY_") and name not in {
            "NOTARY_TEST_STRICT",
            "NOTARY_SHARED_DATA",
        }:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NOTARY_HOME", str(tmp_path / "notary-home"))
    yield


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The data directory the test runs with (``NOTARY_HOME``)."""
    return tmp_path / "notary-home"
