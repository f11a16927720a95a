"""A restore under a controlled clock: erasures re-applied, retention's key destructions kept.

Keys on disk (the file key store and the erasure ledger beside it), the database restored with
``store.backup`` as ``civicguard backup restore`` does, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from civicguard.citizens.restore import after_restore
from civicguard.clock import ManualClock
from civicguard.ingest.model import Device
from civicguard.platform import Platform
from civicguard.privacy.pseudonyms import PREFIX
from civicguard.settings import Settings
from civicguard.store.backup import create_backup, restore_backup
from civicguard.store.lifecycle import KeyEventRepository
from tests.store.conftest import empty_pg, pg_database  # noqa: F401 (a fixture used by name)

from .conftest import APP_STREAM, drain, reading, submit

CARMEN, DIEGO = "carmen-4410", "diego-9083"
DAY = 86_400.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A data directory whose database is a SQLite file or an empty PostgreSQL database."""
    url = ""
    if request.param == "postgresql":
        url = empty_pg(request.getfixturevalue("pg_database"))
    return Settings(data_dir=tmp_path / "data", database_url=url, retention_interval=0)


def restore(settings: Settings, backup: Path, clock: ManualClock) -> tuple[Platform, str]:
    """Restore ``backup`` and re-apply; the restored platform and the report's summary."""
    from civicguard.store.database import make_engine, sqlite_url

    engine = make_engine(settings.database_url or sqlite_url(Path(settings.data_dir)))
    restore_backup(engine, backup)
    engine.dispose()
    platform = Platform.build(settings, clock=clock)
    journal = KeyEventRepository(platform.store.engine)
    report = after_restore(platform.citizens, platform.keys, journal, clock.now())
    return platform, report.summary()


def test_keys_destroyed_by_retention_and_an_erasure_stay_so_after_a_restore(
    settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    platform = Platform.build(settings, clock=clock)
    try:
        app = Device(id="app-1", stream=APP_STREAM, lat=21.88, lon=-102.29)
        platform.registry.provision(app, clock.now())
        for who in (CARMEN, DIEGO):
            platform.citizens.consent.grant(who, APP_STREAM)
        now = clock.now()
        assert submit(platform, app, [reading(1, now, CARMEN), reading(2, now, DIEGO)]).accepted
        drain(platform)
        pseudonym_keys = [n for n in platform.keys.names() if n.startswith(PREFIX)]
        assert pseudonym_keys
        backup = tmp_path / "before.backup"
        create_backup(platform.store.engine, backup)

        clock.advance(60)
        platform.citizens.rights.erase(CARMEN, by="dpo")
        # Days later retention destroys the period's pseudonym key (the readings are 2 days).
        clock.advance(4 * DAY)
        platform.retention.run()
        assert not [n for n in platform.keys.names() if n in pseudonym_keys]
    finally:
        platform.close()

    restored, summary = restore(settings, backup, clock)
    try:
        assert "re-applied 1 erasure" in summary
        # Carmen's subject key and the pseudonym key, both destroyed since the backup.
        assert f"{len(pseudonym_keys) + 1} keys destroyed since this backup stay" in summary
        journal = KeyEventRepository(restored.store.engine)
        for name in pseudonym_keys:
            events = journal.get(name)
            assert "destroyed" in events and "restored from" in events["destroyed"]["reason"]
            assert restored.keys.get(name) is None
        citizens = restored.citizens
        assert not citizens.consent.valid(CARMEN, APP_STREAM)
        assert citizens.consent.valid(DIEGO, APP_STREAM)
        items = citizens.rights.export(CARMEN, by="dpo")["items"]
        assert {i["kind"] for i in items} == {"subject_request"}
        erasures = [i for i in items if i["data"]["kind"] == "erasure"]
        assert [e["data"]["status"] for e in erasures] == ["done"]
        handle = citizens.index.handle(CARMEN)
        assert citizens.rights.records.subjects.get(handle)["erased_at"] is not None  # type: ignore[index]
    finally:
        restored.close()

    # A second restore of the same backup re-applies again; a backup taken now has nothing.
    again, summary = restore(settings, backup, clock)
    try:
        later = tmp_path / "after.backup"
        create_backup(again.store.engine, later)
    finally:
        again.close()
    assert "re-applied 1 erasure" in summary
    last, summary = restore(settings, later, clock)
    last.close()
    assert summary.startswith("re-applied 0 erasures; 0 keys destroyed since this backup stay")


def test_a_new_consent_after_the_erasure_survives_the_restore_of_a_later_backup(
    settings: Settings, tmp_path: Path, clock: ManualClock
) -> None:
    """Carmen is erased, comes back in the very same second (a coarse clock), and a backup
    of her return is restored: her new consent is hers, not the erased one's."""
    platform = Platform.build(settings, clock=clock)
    try:
        platform.citizens.consent.grant(CARMEN, APP_STREAM)
        platform.citizens.rights.erase(CARMEN, by="dpo")
        platform.citizens.consent.grant(CARMEN, APP_STREAM)
        assert platform.citizens.consent.valid(CARMEN, APP_STREAM)
        backup = tmp_path / "after-return.backup"
        create_backup(platform.store.engine, backup)
    finally:
        platform.close()
    restored, summary = restore(settings, backup, clock)
    try:
        assert summary.startswith("re-applied 0 erasures")
        assert restored.citizens.consent.valid(CARMEN, APP_STREAM)
        items = restored.citizens.rights.export(CARMEN, by="dpo")["items"]
        receipts = [i for i in items if i["kind"] == "consent_receipt"]
        assert len(receipts) == 1 and receipts[0]["readable"] is True
    finally:
        restored.close()
