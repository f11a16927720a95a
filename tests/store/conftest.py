"""Store fixtures: every test runs on a SQLite file and on a throwaway PostgreSQL database.

PostgreSQL is the server at 127.0.0.1:5432 (trust auth, user ``postgres``), or the admin URL in
``CIVICGUARD_TEST_PG_URL``. One database is created per test session and dropped at the end;
each test starts on an empty ``public`` schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from civicguard.store.database import make_engine, sqlite_url
from civicguard.store.migrate import upgrade
from civicguard.store.repositories import Store
from tests.services import unavailable

PG_ADMIN_URL = os.environ.get(
    "CIVICGUARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _with_database(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        unavailable("PostgreSQL server", "postgresql")
        raise AssertionError("unreachable") from None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of a database created for this test session, dropped when it ends."""
    name = f"civicguard_test_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(PG_ADMIN_URL, name)
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def empty_pg(url: str) -> str:
    """Drop everything in the database at ``url`` so that it is as new; return ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return empty_pg(request.getfixturevalue("pg_database"))


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An engine on the empty database, disposed after the test."""
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    """The store on a database migrated to the current schema."""
    upgrade(engine)
    return Store(engine)
