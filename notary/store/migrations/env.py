"""Alembic environment: runs migrations on the connection notary hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from notary.store import models  # noqa: F401 - registers the tables

target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("notary migrations run only through notary.store.Store")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
