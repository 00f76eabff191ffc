"""One transaction nonce per sender and chain: closes the race of two processes
reserving the same nonce at the same instant.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("anchor") as batch:
        batch.create_unique_constraint(
            "uq_anchor_chain_sender_nonce", ["chain_id", "sender", "nonce"]
        )


def downgrade() -> None:
    with op.batch_alter_table("anchor") as batch:
        batch.drop_constraint("uq_anchor_chain_sender_nonce", type_="unique")
