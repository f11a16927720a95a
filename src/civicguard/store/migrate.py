"""Bring a database to the current schema with Alembic."""

from __future__ import annotations

import threading
from importlib import resources

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from civicguard.store.schema import metadata


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration that targets ``engine``, with the packaged migrations."""
    config = Config()
    location = resources.files("civicguard.store").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.attributes["engine"] = engine
    return config


# Alembic keeps its migration context in module globals: two platforms built at once in one
# process (workers in tests, embedding) must not migrate at the same time.
_MIGRATING = threading.Lock()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision``."""
    with _MIGRATING:
        command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Undo migrations down to ``revision`` (``base``: an empty database)."""
    command.downgrade(alembic_config(engine), revision)


def schema_drift(engine: Engine) -> list[object]:
    """How the database differs from ``schema.metadata``; empty when the migrations are complete."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))
