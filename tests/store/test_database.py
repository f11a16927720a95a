"""Engines, generated ids, and the whole platform on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy import select, text

from civicguard.clock import ManualClock
from civicguard.ingest.model import Device, Reason, Rejection, Transport
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.settings import Settings
from civicguard.store import schema
from civicguard.store.database import make_engine
from civicguard.store.repositories import Store
from tests.store.conftest import empty_pg
from tests.store.test_repositories import T0, tank_batch


def test_generated_ids_increase_on_every_write(store: Store) -> None:
    def rejection(n: int) -> Rejection:
        return Rejection(
            reason=Reason.WRONG_TYPE, detail=f"#{n}", transport=Transport.HTTP, received_at=T0 + n
        )

    store.dead_letters.write([rejection(1), rejection(2)])
    store.dead_letters.write([rejection(3)])
    store.readings.write([tank_batch("tank-1", range(3))])
    store.readings.write([tank_batch("tank-1", range(2, 6))])  # seq 2 is a duplicate
    with store.engine.connect() as conn:
        letters = conn.execute(
            select(schema.dead_letters.c.id, schema.dead_letters.c.detail).order_by(
                schema.dead_letters.c.id
            )
        ).all()
        readings = conn.execute(
            select(schema.readings.c.id, schema.readings.c.seq).order_by(schema.readings.c.id)
        ).all()
    assert [d for _, d in letters] == ["#1", "#2", "#3"]
    assert len({i for i, _ in letters}) == 3
    assert [s for _, s in readings] == [0, 1, 2, 3, 4, 5]
    ids = [i for i, _ in readings]
    assert ids == sorted(ids) and len(set(ids)) == 6


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg", "postgres"])
def test_postgresql_url_forms(pg_database: str, scheme: str) -> None:
    url = scheme + "://" + pg_database.split("://", 1)[1]
    engine = make_engine(url)
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT current_database()")).scalar_one() == url.rsplit("/")[-1]
            )
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_platform_runs_on_postgresql(pg_database: str, tmp_path: Path) -> None:
    url = empty_pg(pg_database)
    clock = ManualClock(T0)
    keys = MemoryKeyStore()
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    platform = Platform.build(settings, clock=clock, keys=keys)
    try:
        camera = Device(id="anpr-01", stream="traffic.anpr", lat=21.882, lon=-102.296)
        secret = platform.registry.provision(camera, clock.now())
        device = platform.registry.by_token(secret)
        body = orjson.dumps(
            [
                {
                    "seq": 1,
                    "ts": T0 - 2,
                    "values": {
                        "plate": "AGS1234",
                        "lane": 1,
                        "speed": 42.5,
                        "vehicle_class": "car",
                    },
                },
                {
                    "seq": 2,
                    "ts": T0 - 1,
                    "values": {
                        "plate": "AGS1234",
                        "lane": 2,
                        "speed": 51.0,
                        "vehicle_class": "van",
                    },
                },
                {
                    "seq": 3,
                    "ts": T0,
                    "values": {
                        "plate": "XYZ9876",
                        "lane": 9,
                        "speed": 30.0,
                        "vehicle_class": "bus",
                    },
                },
            ]
        )
        result = platform.ingest.submit(device, body, Transport.HTTP)
        assert result.accepted == 2
        while platform.processor.run_once(timeout=0.05):
            pass
        stored = platform.store.readings.query(device_id="anpr-01")
        assert [(r["seq"], r["values"]["speed"], r["values"]["lane"]) for r in stored] == [
            (2, 51.0, 2.0),
            (1, 42.5, 1.0),
        ]
        assert stored[0]["values"]["plate"] == stored[1]["values"]["plate"] != "AGS1234"
        assert platform.store.dead_letters.count_by_reason() == {"out_of_range": 1}
        with platform.store.engine.connect() as conn:
            everything = " ".join(
                str(row)
                for table in ("readings", "dead_letters", "alerts", "devices")
                for row in conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
            )
        assert "AGS1234" not in everything and "XYZ9876" not in everything
    finally:
        platform.close()

    # A second process on the same database sees the device and the stored sequence numbers.
    again = Platform.build(settings, clock=clock, keys=keys)
    try:
        assert again.registry.by_token(secret).id == "anpr-01"
        assert again.store.readings.max_seq() == {"anpr-01": 2}
    finally:
        again.close()
