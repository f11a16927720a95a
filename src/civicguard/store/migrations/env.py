"""Alembic environment: runs migrations on the engine the platform hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from civicguard.store.database import make_engine
from civicguard.store.schema import metadata

config = context.config


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine  # type: ignore[no-any-return]
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no engine or sqlalchemy.url given to the migrations")
    return make_engine(url)


def run_migrations_online() -> None:
    """Apply migrations inside one transaction per run."""
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
