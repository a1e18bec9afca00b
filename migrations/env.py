"""Alembic environment: the URL comes from the caller (``bot.store.migrate``) or settings."""

from __future__ import annotations

from alembic import context

from bot.config import Settings
from bot.store.db import make_engine
from bot.store.models import Base

config = context.config
url = config.attributes.get("database_url") or Settings.from_env().database_url


def run_offline() -> None:
    """Emit SQL without a connection."""
    context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Apply migrations over a connection."""
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
