"""The migrations build exactly the schema the code declares, and take it down again."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from civicguard.store import schema
from civicguard.store.migrate import downgrade, schema_drift, upgrade


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_head_creates_exactly_the_declared_schema(engine: Engine) -> None:
    assert tables(engine) == set()
    upgrade(engine)
    assert tables(engine) == set(schema.metadata.tables) | {"alembic_version"}
    # Alembic's autogenerate finds nothing to add, drop or alter: no model change lacks a migration.
    assert schema_drift(engine) == []


def test_drift_is_detected(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_readings_stream_ts")
        conn.exec_driver_sql("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")
    drift = [str(d) for d in schema_drift(engine)]
    assert any("ix_readings_stream_ts" in d and "add_index" in d for d in drift)
    assert any("remove_table" in d and "scratch" in d for d in drift)


def test_downgrade_base_then_upgrade_again(engine: Engine) -> None:
    upgrade(engine)
    downgrade(engine)
    assert tables(engine) <= {"alembic_version"}
    upgrade(engine)
    upgrade(engine)  # already at head: nothing to do
    assert tables(engine) == set(schema.metadata.tables) | {"alembic_version"}
    assert schema_drift(engine) == []
