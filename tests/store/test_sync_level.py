"""Embedded mode syncs every commit: what ingest acknowledged or the store committed outlives a
lost page cache (power loss, or ext4 turning a disk read-only after an I/O error).

`civicguard bench faults` lost 1,000 of 20,000 acknowledged readings on its read-only-disk row
while both files synced lazily (``synchronous=NORMAL``); the row runs too long for the suite, so
this test holds the setting it depends on. SQLite reports FULL as 2 (NORMAL is 1).
"""

from __future__ import annotations

from pathlib import Path

from civicguard.platform import Platform
from civicguard.settings import Settings

FULL = 2


def test_the_event_log_and_the_store_sync_every_commit(tmp_path: Path) -> None:
    platform = Platform.build(Settings(data_dir=tmp_path))
    try:
        with platform.store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == FULL
        log_db = platform.log._db  # type: ignore[attr-defined]
        assert log_db.execute("PRAGMA synchronous").fetchone()[0] == FULL
    finally:
        platform.close()
