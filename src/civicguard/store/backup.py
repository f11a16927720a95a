"""Backups of the database: a consistent copy taken while the platform runs, and its restore.

A backup holds the database only. Keys stay in the key store, apart from every backup, on
purpose: erasing a subject destroys their key, so the subject's sealed data in old backups can
no longer be read (crypto-shredding), and destroyed pseudonym keys stay destroyed. A restored
``key_events`` table may still call a key alive that was destroyed since the backup:
:func:`reconcile_key_events` records those destructions again (the key store is the truth).
What else a restore must undo (erasures) is the citizens package's: see
:mod:`civicguard.citizens.restore`.

SQLite is copied with its online backup API (a consistent snapshot while writers carry on);
PostgreSQL with ``pg_dump --format=custom`` and restored with ``pg_restore``.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from civicguard.store import schema
from civicguard.store.lifecycle import CREATED, DESTROYED, KeyEventRepository

#: Why :func:`reconcile_key_events` records a destruction (the time is the restore's).
DESTROYED_BEFORE_RESTORE = (
    "destroyed after the backup this database was restored from was taken; "
    "recorded again at the restore"
)


class BackupError(RuntimeError):
    """A backup or restore that could not be done; the message says why."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    """Where a backup went, how big it is and which database it came from."""

    path: Path
    bytes: int
    dialect: str


def _libpq_url(engine: Engine) -> str:
    url = make_url(engine.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (Debian package postgresql-client)")
    return path


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()}")


def _sqlite_copy(source: str, target: str) -> None:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as out:
        src.backup(out)


def create_backup(engine: Engine, dest: Path) -> BackupReport:
    """Write a consistent backup of the database behind ``engine`` to the file ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        raise BackupError(f"{dest}: already exists; a backup never overwrites another")
    dialect = engine.dialect.name
    if dialect == "sqlite":
        source = engine.url.database
        if not source or source == ":memory:":
            raise BackupError("an in-memory SQLite database has nothing to back up")
        _sqlite_copy(source, str(dest))
    elif dialect == "postgresql":
        tool = _tool("pg_dump")
        _run(
            [tool, "--format=custom", "--no-owner", "--file", str(dest), _libpq_url(engine)],
            "pg_dump",
        )
    else:
        raise BackupError(f"backups of {dialect} databases are not supported")
    dest.chmod(0o600)
    return BackupReport(path=dest, bytes=dest.stat().st_size, dialect=dialect)


def restore_backup(engine: Engine, source: Path) -> None:
    """Replace the database behind ``engine`` by the backup at ``source``.

    Stop the platform first: whatever it wrote since the backup is lost.
    """
    if not source.is_file():
        raise BackupError(f"{source}: no such backup file")
    dialect = engine.dialect.name
    engine.dispose()
    if dialect == "sqlite":
        target = engine.url.database
        if not target or target == ":memory:":
            raise BackupError("cannot restore into an in-memory SQLite database")
        _sqlite_copy(str(source), target)
    elif dialect == "postgresql":
        tool = _tool("pg_restore")
        _run(
            [
                tool,
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--dbname",
                _libpq_url(engine),
                str(source),
            ],
            "pg_restore",
        )
    else:
        raise BackupError(f"restores of {dialect} databases are not supported")


def reconcile_key_events(
    engine: Engine, alive: Callable[[str], bool], prefix: str, at: float
) -> list[str]:
    """Record the destruction of keys named ``prefix...`` that the restored ``key_events``
    says were created and never destroyed, but that the key store no longer holds.

    Returns their names. The keys themselves were never in the backup, so they stay
    destroyed whatever the table says; this only puts the table right.
    """
    t = schema.key_events
    with engine.connect() as conn:
        events: dict[str, set[str]] = {}
        q = select(t.c.name, t.c.event).where(t.c.name.startswith(prefix, autoescape=True))
        for name, event in conn.execute(q):
            events.setdefault(name, set()).add(event)
    gone = sorted(
        name
        for name, kinds in events.items()
        if CREATED in kinds and DESTROYED not in kinds and not alive(name)
    )
    journal = KeyEventRepository(engine)
    for name in gone:
        journal.record(name, DESTROYED, at, DESTROYED_BEFORE_RESTORE)
    return gone
