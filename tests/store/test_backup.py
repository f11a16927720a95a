"""Backups on SQLite and PostgreSQL: taken while the store is in use, restored exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from civicguard.store.backup import BackupError, create_backup, restore_backup
from civicguard.store.repositories import Store
from tests.store.test_repositories import tank_batch
from tests.test_cli import run


def test_backup_then_restore_brings_back_what_was_stored_at_backup_time(
    store: Store, engine: Engine, tmp_path: Path
) -> None:
    store.readings.write([tank_batch("tank-1", range(1, 51))])
    backup = tmp_path / "backups" / "before.dump"
    report = create_backup(engine, backup)
    assert report.path == backup and report.bytes == backup.stat().st_size > 0
    assert report.dialect == engine.dialect.name
    assert backup.stat().st_mode & 0o777 == 0o600

    store.readings.write([tank_batch("tank-1", range(51, 81)), tank_batch("tank-2", range(1, 6))])
    assert store.readings.count() == 85
    restore_backup(engine, backup)
    assert store.readings.count() == 50
    assert store.readings.max_seq() == {"tank-1": 50}


def test_a_backup_never_overwrites_another(store: Store, engine: Engine, tmp_path: Path) -> None:
    backup = tmp_path / "one.dump"
    create_backup(engine, backup)
    size = backup.stat().st_size
    with pytest.raises(BackupError, match="already exists"):
        create_backup(engine, backup)
    assert backup.stat().st_size == size


def test_restoring_a_missing_file_says_so(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no such backup file"):
        restore_backup(engine, tmp_path / "nope.dump")


def test_backup_commands_round_trip_a_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    place = ("--stream", "water.tank", "--lat", "21.88", "--lon", "-102.29")
    run("devices", "provision", "tank-9", *place, data_dir=data)
    made = run("backup", "create", str(tmp_path / "b.db"), data_dir=data)
    assert "backup of the sqlite database written" in made.stdout
    run("devices", "revoke", "tank-9", data_dir=data)
    run("backup", "restore", str(tmp_path / "b.db"), data_dir=data)
    listing = run("devices", "list", data_dir=data).stdout
    row = next(line for line in listing.splitlines() if "tank-9" in line)
    assert "yes" not in row  # revoked after the backup: the restore brings it back alive
    again = run("backup", "create", str(tmp_path / "b.db"), data_dir=data, check=False)
    assert again.returncode == 2 and "already exists" in again.stdout
