"""Initial schema: runs, items, timestamps, anchors.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("stream", sa.String(200), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=True),
        sa.Column("leaves", sa.Integer(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("skipped", sa.String(), nullable=False),
        sa.Column("previous_run_id", sa.Integer(), nullable=True),
        sa.Column("previous_root", sa.LargeBinary(), nullable=True),
        _time("created_at", False),
        _time("updated_at", False),
        _time("sealed_at"),
        sa.Column("claim_owner", sa.String(200), nullable=True),
        _time("claim_expires"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("next_retry_at"),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.UniqueConstraint("stream", "period", name="uq_run_stream_period"),
    )
    op.create_index("ix_run_state", "run", ["state"])
    op.create_table(
        "item",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("path", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("record", sa.String(), nullable=True),
        sa.Column("content_digest", sa.LargeBinary(), nullable=True),
        sa.Column("record_digest", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.UniqueConstraint("run_id", "path", name="uq_item_run_path"),
    )
    op.create_index("ix_item_run_seq", "item", ["run_id", "seq"])
    op.create_table(
        "timestamp",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("tsa", sa.String(200), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("serial", sa.String(80), nullable=False),
        _time("gen_time", False),
        sa.Column("gen_time_raw", sa.String(40), nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("hash_algorithm", sa.String(16), nullable=False),
        sa.Column("certificates", sa.String(), nullable=False),
        _time("created_at", False),
    )
    op.create_index("ix_timestamp_run_id", "timestamp", ["run_id"])
    op.create_table(
        "anchor",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract", sa.String(64), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("tx_hash", sa.String(80), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("max_fee_per_gas", sa.BigInteger(), nullable=True),
        sa.Column("max_priority_fee_per_gas", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.String(80), nullable=True),
        _time("block_time"),
        sa.Column("log_index", sa.Integer(), nullable=True),
        sa.Column("confirmations_required", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        _time("created_at", False),
        _time("updated_at", False),
    )
    op.create_index("ix_anchor_run_id", "anchor", ["run_id"])
    op.create_index("ix_anchor_state", "anchor", ["state"])


def downgrade() -> None:
    op.drop_table("anchor")
    op.drop_table("timestamp")
    op.drop_table("item")
    op.drop_table("run")
