"""Privacy fixtures: the store tests' SQLite and PostgreSQL databases, for the retention sweep."""

from __future__ import annotations

from tests.store.conftest import engine, pg_database, store, store_url

__all__ = ["engine", "pg_database", "store", "store_url"]
