"""Database tables: runs, their items, their timestamps and anchors.

The database is the service's index and work queue; bundles never depend on it. Digests
are stored as raw bytes, times as UTC. Schema changes go through an alembic migration in
``notary/store/migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    LargeBinary,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

# Run states, in pipeline order. A run is complete only with enough verified tokens.
COLLECTING = "collecting"
HASHING = "hashing"
AWAITING_TIMESTAMP = "awaiting_timestamp"
COMPLETE = "complete"
FAILED = "failed"
RUN_STATES = (COLLECTING, HASHING, AWAITING_TIMESTAMP, COMPLETE, FAILED)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp read back as an aware UTC datetime (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _time(nullable: bool = True) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


def _blob(nullable: bool = True) -> Column[bytes]:
    return Column(LargeBinary, nullable=nullable)


def _big(nullable: bool = True) -> Column[int]:
    # NOTE: sizes over 2 GiB and wei amounts overflow PostgreSQL's 32-bit INTEGER.
    return Column(BigInteger, nullable=nullable)


class Run(SQLModel, table=True):
    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("stream", "period", name="uq_run_stream_period"),
    )

    id: int | None = Field(default=None, primary_key=True)
    stream: str = Field(max_length=200)
    period: str = Field(max_length=32)
    state: str = Field(default=COLLECTING, max_length=32, index=True)
    algorithm: str = Field(max_length=16)
    source: str = Field(default="[]")
    root: bytes | None = Field(default=None, sa_column=_blob())
    leaves: int = 0
    item_count: int = 0
    error_count: int = 0
    partial: bool = False
    skipped: str = Field(default="[]")
    previous_run_id: int | None = None
    previous_root: bytes | None = Field(default=None, sa_column=_blob())
    run_record: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time(False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time(False))
    sealed_at: datetime | None = Field(default=None, sa_column=_time())
    claim_owner: str | None = Field(default=None, max_length=200)
    claim_expires: datetime | None = Field(default=None, sa_column=_time())
    attempts: int = 0
    next_retry_at: datetime | None = Field(default=None, sa_column=_time())
    last_error: str | None = None


class Item(SQLModel, table=True):
    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("run_id", "path", name="uq_item_run_path"),
        Index("ix_item_run_seq", "run_id", "seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    seq: int
    path: bytes = Field(sa_column=_blob(False))
    kind: str = Field(max_length=16)
    status: str = Field(max_length=16)
    size: int = Field(default=0, sa_column=_big(False))
    record: str | None = None
    content_digest: bytes | None = Field(default=None, sa_column=_blob())
    record_digest: bytes | None = Field(default=None, sa_column=_blob())
    error: str | None = None


class Timestamp(SQLModel, table=True):
    __tablename__ = "timestamp"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    tsa: str = Field(max_length=200)
    url: str
    response: bytes = Field(sa_column=_blob(False))
    serial: str = Field(max_length=80)
    gen_time: datetime = Field(sa_column=_time(False))
    gen_time_raw: str = Field(max_length=40)
    policy: str = Field(max_length=200)
    hash_algorithm: str = Field(max_length=16)
    certificates: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time(False))


class Anchor(SQLModel, table=True):
    __tablename__ = "anchor"
    __table_args__ = (
        UniqueConstraint(
            "chain_id", "sender", "nonce", name="uq_anchor_chain_sender_nonce"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    chain_id: int = Field(sa_column=_big(False))
    contract: str = Field(max_length=64)
    root: bytes = Field(sa_column=_blob(False))
    sender: str = Field(max_length=64)
    tx_hash: str | None = Field(default=None, max_length=80)
    nonce: int | None = Field(default=None, sa_column=_big())
    max_fee_per_gas: int | None = Field(default=None, sa_column=_big())
    max_priority_fee_per_gas: int | None = Field(default=None, sa_column=_big())
    state: str = Field(default="submitted", max_length=16, index=True)
    block_number: int | None = Field(default=None, sa_column=_big())
    block_hash: str | None = Field(default=None, max_length=80)
    block_time: datetime | None = Field(default=None, sa_column=_time())
    log_index: int | None = None
    confirmations_required: int = 12
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time(False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time(False))
