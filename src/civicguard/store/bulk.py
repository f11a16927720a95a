"""Exactly-once bulk inserts of readings: executemany on SQLite, COPY on PostgreSQL.

A reading's idempotency key is (device, seq): writing a row that is already stored is a no-op
and is not counted, so a batch delivered twice by the event log is stored once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from civicguard.ingest.model import ReadingBatch
from civicguard.store import schema

#: The columns a reading is written with, in the order of the tuples below.
COLUMNS = ("device_id", "stream", "seq", "ts", "received_at", "cell", "payload", "fingerprint")
ReadingRow = tuple[str, str, int, float, float, str, str, int | None]

_SQLITE_INSERT = (
    "INSERT INTO readings (device_id, stream, seq, ts, received_at, cell, payload, fingerprint) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING"
)
# One staging table per session, emptied at every commit; the COPY lands there because COPY
# itself cannot skip rows that conflict with stored ones.
_PG_STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS readings_staging ("
    "device_id text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, "
    "ts double precision NOT NULL, received_at double precision NOT NULL, "
    "cell text NOT NULL, payload text NOT NULL, fingerprint bigint) ON COMMIT DELETE ROWS"
)
_PG_COPY = (
    "COPY readings_staging (device_id, stream, seq, ts, received_at, cell, payload, fingerprint) "
    "FROM STDIN (FORMAT BINARY)"
)
# Binary COPY skips number formatting and parsing on both ends; types follow COLUMNS.
_PG_COPY_TYPES = ("text", "text", "int8", "float8", "float8", "text", "text", "int8")
_PG_MERGE = (
    "INSERT INTO readings (device_id, stream, seq, ts, received_at, cell, payload, fingerprint) "
    "SELECT device_id, stream, seq, ts, received_at, cell, payload, fingerprint "
    "FROM readings_staging "
    "ON CONFLICT (device_id, seq) DO NOTHING"
)


def reading_rows(batch: ReadingBatch) -> list[ReadingRow]:
    """The batch's readings as row tuples in ``COLUMNS`` order; absent fields are left out."""
    fields = batch.fields
    finite = (~np.isnan(batch.values)).tolist()
    values = batch.values.tolist()
    text_items = list(batch.text.items())
    stream = batch.stream
    prints: list[int | None] = (
        [None] * len(batch) if batch.fingerprints is None else batch.fingerprints.tolist()
    )
    rows: list[ReadingRow] = []
    for i, (device_id, seq, ts, received, cell, fingerprint) in enumerate(
        zip(
            batch.device_ids,
            batch.seq.tolist(),
            batch.ts.tolist(),
            batch.received_at.tolist(),
            batch.cells,
            prints,
            strict=True,
        )
    ):
        payload: dict[str, Any] = {
            f: v for f, v, ok in zip(fields, values[i], finite[i], strict=True) if ok
        }
        for name, col in text_items:
            payload[name] = col[i]
        text = orjson.dumps(payload).decode()
        rows.append((device_id, stream, seq, ts, received, cell, text, fingerprint))
    return rows


def insert_readings(conn: Connection, rows: list[ReadingRow]) -> int:
    """Insert ``rows`` in ``conn``'s transaction, skipping stored keys; return how many are new."""
    if not rows:
        return 0
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return _insert_sqlite(conn, rows)
    if dialect == "postgresql" and conn.dialect.driver == "psycopg":
        return _insert_postgresql(conn, rows)
    if dialect == "postgresql":
        # Another PostgreSQL driver: no COPY API we know, so a plain multi-row upsert.
        result = conn.execute(
            postgresql.insert(schema.readings).on_conflict_do_nothing(),
            [dict(zip(COLUMNS, r, strict=True)) for r in rows],
        )
        return int(result.rowcount)
    raise NotImplementedError(f"no idempotent reading insert for the {dialect} database")


def _insert_sqlite(conn: Connection, rows: list[ReadingRow]) -> int:
    # Straight to the driver's executemany: one prepared statement stepped in C for every row,
    # without SQLAlchemy's per-row parameter processing.
    result = conn.exec_driver_sql(_SQLITE_INSERT, rows)
    return int(result.rowcount)


def _insert_postgresql(conn: Connection, rows: list[ReadingRow]) -> int:
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(_PG_STAGING)
        with cursor.copy(_PG_COPY) as copy:
            copy.set_types(_PG_COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        cursor.execute(_PG_MERGE)
        return int(cursor.rowcount)
