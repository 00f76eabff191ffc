"""The database: runs, items, timestamps and anchors behind one small API.

SQLite (a file in the data directory) by default, PostgreSQL for shared deployments. The
schema is brought to the newest alembic revision whenever a store is opened. Methods
open their own short transactions; a Store may be shared by threads (SQLAlchemy's pool),
but each method call is one unit of work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, create_engine

from notary.errors import NotFoundError, RunConflictError, StoreError
from notary.store.models import (
    COMPLETE,
    Anchor,
    Item,
    Run,
    Timestamp,
    utcnow,
)

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
ITEM_BATCH = 1000
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK = 0x6E6F74617279  # an arbitrary constant key: 'notary' in ASCII

__all__ = ["Anchor", "Item", "Run", "Store", "Timestamp"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NOTE: in WAL mode NORMAL never corrupts the database; a power cut may undo the
    # last commits, which a resumed run simply hashes again.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def redact(url: str) -> str:
    """Return the URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


class Store:
    """Open (and migrate) the database at ``url``.

    Raises StoreError when the database cannot be reached or migrated.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            self.engine = _make_engine(url)
            if migrate:
                self.upgrade()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(
                f"database: cannot open {redact(url)}: {exc}", url=redact(url)
            ) from exc

    def upgrade(self) -> None:
        """Apply every pending alembic migration.

        Serialised between processes (several schedulers may start at once on a new
        database): a PostgreSQL advisory lock, or an exclusive SQLite transaction.
        """
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            elif connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session committed on success, rolled back on error."""
        session = Session(self.engine, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except IntegrityError:
            session.rollback()
            raise
        except SQLAlchemyError as exc:
            session.rollback()
            raise StoreError(f"database: {exc.__class__.__name__}: {exc}") from exc
        finally:
            session.close()

    # runs ----------------------------------------------------------------------------

    def create_run(
        self,
        *,
        stream: str,
        period: str,
        algorithm: str,
        source: str,
        owner: str | None = None,
        lease: timedelta | None = None,
    ) -> Run:
        """Insert a new run for (stream, period), claimed by ``owner``.

        Raises RunConflictError when that stream and period already have a run: the
        database's unique constraint, not a prior read, decides.
        """
        now = utcnow()
        run = Run(
            stream=stream,
            period=period,
            algorithm=algorithm,
            source=source,
            claim_owner=owner,
            claim_expires=now + lease if lease else None,
        )
        try:
            with self.session() as session:
                session.add(run)
                session.flush()
                session.refresh(run)
        except IntegrityError as exc:
            existing = self.find_run(stream, period)
            held = f"{existing.id} ({existing.state})" if existing else "?"
            raise RunConflictError(
                f"stream {stream} period {period}: already has run {held}",
                stream=stream,
                period=period,
                run=existing.id if existing else None,
            ) from exc
        logger.info("run %s created: stream %s period %s", run.id, stream, period)
        return run

    def get_run(self, run_id: int) -> Run:
        with self.session() as session:
            run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id}: no such run", run=run_id)
        return run

    def find_run(self, stream: str, period: str) -> Run | None:
        with self.session() as session:
            query = select(Run).where(
                col(Run.stream) == stream, col(Run.period) == period
            )
            return session.scalars(query).first()

    def list_runs(self, stream: str | None = None) -> list[Run]:
        with self.session() as session:
            query = select(Run).order_by(col(Run.id))
            if stream is not None:
                query = query.where(col(Run.stream) == stream)
            return list(session.scalars(query))

    def update_run(self, run_id: int, **values: Any) -> Run:
        """Set columns of a run (and ``updated_at``); return the fresh row."""
        values["updated_at"] = utcnow()
        with self.session() as session:
            session.execute(update(Run).where(col(Run.id) == run_id).values(**values))
            run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id}: no such run", run=run_id)
        return run

    def previous_completed(self, stream: str, period: str) -> Run | None:
        """Return the latest complete run of ``stream`` before ``period``."""
        with self.session() as session:
            query = (
                select(Run)
                .where(
                    col(Run.stream) == stream,
                    col(Run.state) == COMPLETE,
                    col(Run.period) < period,
                )
                .order_by(col(Run.period).desc())
            )
            return session.scalars(query).first()

    def claim(self, run_id: int, owner: str, lease: timedelta) -> bool:
        """Take or renew the lease on a run; return False if another live owner holds
        it.

        A compare-and-set UPDATE: it succeeds only when the run is unclaimed, already
        ours, or its holder's lease has expired, so two processes can never both hold
        it.
        """
        now = utcnow()
        with self.session() as session:
            result = session.execute(
                update(Run)
                .where(
                    col(Run.id) == run_id,
                    or_(
                        col(Run.claim_owner).is_(None),
                        col(Run.claim_owner) == owner,
                        col(Run.claim_expires).is_(None),
                        col(Run.claim_expires) < now,
                    ),
                )
                .values(claim_owner=owner, claim_expires=now + lease, updated_at=now)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self, run_id: int, owner: str) -> None:
        with self.session() as session:
            session.execute(
                update(Run)
                .where(col(Run.id) == run_id, col(Run.claim_owner) == owner)
                .values(claim_owner=None, claim_expires=None)
            )

    # items ---------------------------------------------------------------------------

    # TODO: PostgreSQL COPY inserts about 1.5x faster than these batched INSERTs
    # (measured 33k against 22k rows/s); worth it for runs of millions of items.
    def add_items(self, run_id: int, rows: Sequence[dict[str, Any]]) -> None:
        """Insert item rows in bulk (one INSERT per batch, not one ORM object each)."""
        for start in range(0, len(rows), ITEM_BATCH):
            batch = [
                dict(row, run_id=run_id) for row in rows[start : start + ITEM_BATCH]
            ]
            with self.session() as session:
                session.execute(insert(Item), batch)

    def item_paths(self, run_id: int) -> set[bytes]:
        """Return the paths of items already recorded for a run."""
        with self.session() as session:
            rows = session.execute(
                select(col(Item.path)).where(col(Item.run_id) == run_id)
            )
            return {bytes(path) for (path,) in rows}

    def item_count(self, run_id: int, status: str | None = None) -> int:
        """Count a run's items, or only those with ``status``."""
        with self.session() as session:
            query = (
                select(func.count()).select_from(Item).where(col(Item.run_id) == run_id)
            )
            if status is not None:
                query = query.where(col(Item.status) == status)
            return int(session.scalar(query) or 0)

    def iter_items(self, run_id: int, batch: int = 5000) -> Iterator[Item]:
        """Yield a run's items in path order, reading ``batch`` rows at a time."""
        last: bytes | None = None
        while True:
            with self.session() as session:
                query = select(Item).where(col(Item.run_id) == run_id)
                if last is not None:
                    query = query.where(col(Item.path) > last)
                rows = list(
                    session.scalars(query.order_by(col(Item.path)).limit(batch))
                )
            if not rows:
                return
            yield from rows
            last = rows[-1].path

    def problem_items(self, run_id: int) -> list[Item]:
        """Return the items of a run whose status is not ``ok`` (errors, unstable)."""
        with self.session() as session:
            query = select(Item).where(
                col(Item.run_id) == run_id, col(Item.status) != "ok"
            )
            return list(session.scalars(query.order_by(col(Item.path))))

    def item_digests(
        self, run_id: int, batch: int = 10_000
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield (content_digest, record_digest) of every hashed item of a run.

        Streams rows ``batch`` at a time, so a million items never sit in memory as
        rows; the session stays open until the iterator is exhausted or closed.
        """
        with self.session() as session:
            rows = session.execute(
                select(col(Item.content_digest), col(Item.record_digest))
                .where(
                    col(Item.run_id) == run_id, col(Item.content_digest).is_not(None)
                )
                .execution_options(yield_per=batch)
            )
            for content, meta in rows:
                yield bytes(content), bytes(meta)

    # timestamps and anchors ----------------------------------------------------------

    def add_timestamp(self, timestamp: Timestamp) -> Timestamp:
        with self.session() as session:
            session.add(timestamp)
            session.flush()
            session.refresh(timestamp)
        return timestamp

    def timestamps(self, run_id: int) -> list[Timestamp]:
        with self.session() as session:
            query = select(Timestamp).where(col(Timestamp.run_id) == run_id)
            return list(session.scalars(query.order_by(col(Timestamp.id))))

    def anchors(self, run_id: int | None = None) -> list[Anchor]:
        with self.session() as session:
            query = select(Anchor).order_by(col(Anchor.id))
            if run_id is not None:
                query = query.where(col(Anchor.run_id) == run_id)
            return list(session.scalars(query))
