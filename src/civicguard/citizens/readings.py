"""A subject's readings on the streams that name their subject (the safety app).

Those readings carry the subject only as a rotating pseudonym, so the store cannot be asked for
"this citizen's readings". Given the citizen's id (which the subject gives with their request),
the pseudonym under each live key of the stream is computed and the readings of that key's
period that carry it are found. Periods whose key is destroyed link to nobody any more and are
not searched; their readings are past retention and swept anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from sqlalchemy import Engine, delete, select

from civicguard.catalog.model import Catalog
from civicguard.citizens.ledger import ReadingTrace
from civicguard.privacy.keys import KeyStore
from civicguard.privacy.pseudonyms import PREFIX, digest, parse_key_name
from civicguard.store import schema


class SubjectReadings:
    """Finds and deletes the readings that carry a subject's pseudonym in a live key period."""

    def __init__(self, catalog: Catalog, keys: KeyStore, engine: Engine) -> None:
        self._catalog = catalog
        self._keys = keys
        self._engine = engine

    def traces(self, citizen_id: str) -> list[ReadingTrace]:
        """The pseudonym the subject's readings carry in each live key period of each stream
        that names its subject (what an erasure keeps in the ledger to find them again)."""
        return list(self._needles(citizen_id))

    def _needles(self, citizen_id: str) -> Iterator[ReadingTrace]:
        for stream in self._catalog.streams:
            if stream.subject_field is None:
                continue
            spec = stream.field(stream.subject_field)
            # A reading's time may be rounded down into the period before its key's.
            slack = stream.time_bucket_s or 0.0
            for name in self._keys.names():
                if not name.startswith(f"{PREFIX}{stream.name}/"):
                    continue
                period = parse_key_name(name, self._catalog.pseudonym_rotation_s)
                key = self._keys.get(name)
                if period is None or key is None:
                    continue
                yield ReadingTrace(
                    stream=stream.name,
                    field=spec.name,
                    pseudonym=digest(key, spec.identifier, citizen_id),
                    start=period.start - slack,
                    end=period.end,
                    key=name,
                )

    def _matches(
        self, traces: Iterable[ReadingTrace], received_up_to: float | None = None
    ) -> Iterator[tuple[ReadingTrace, dict[str, Any]]]:
        t = schema.readings
        columns = (t.c.id, t.c.device_id, t.c.seq, t.c.ts, t.c.received_at, t.c.cell, t.c.payload)
        with self._engine.connect() as conn:
            for needle in traces:
                q = (
                    select(*columns)
                    .where(t.c.stream == needle.stream)
                    .where(t.c.ts >= needle.start, t.c.ts < needle.end)
                    .where(t.c.payload.contains(f'"{needle.pseudonym}"', autoescape=True))
                    .order_by(t.c.ts)
                )
                if received_up_to is not None:
                    q = q.where(t.c.received_at <= received_up_to)
                for row in conn.execute(q).mappings():
                    values = orjson.loads(row["payload"])
                    if values.get(needle.field) == needle.pseudonym:
                        yield needle, {**row, "values": values}

    def find(self, citizen_id: str) -> list[dict[str, Any]]:
        """The subject's readings as stored (pseudonym, cell, time bucket, and when each
        arrived, which an erasure re-applied after a restore goes by), oldest first."""
        return [
            {
                "stream": needle.stream,
                "device_id": row["device_id"],
                "seq": row["seq"],
                "ts": row["ts"],
                "received_at": row["received_at"],
                "cell": row["cell"],
                "values": row["values"],
            }
            for needle, row in self._matches(self._needles(citizen_id))
        ]

    def delete(self, citizen_id: str) -> int:
        """Delete the subject's readings; returns how many went."""
        return self._delete(row["id"] for _n, row in self._matches(self._needles(citizen_id)))

    def delete_traced(self, traces: Iterable[ReadingTrace], received_up_to: float) -> int:
        """Delete the readings ``traces`` find that arrived by ``received_up_to`` (an erasure
        re-applied after a restore: readings of the subject's later return stay)."""
        return self._delete(row["id"] for _n, row in self._matches(traces, received_up_to))

    def _delete(self, found: Iterable[int]) -> int:
        ids = list(found)
        if not ids:
            return 0
        t = schema.readings
        with self._engine.begin() as conn:
            gone = 0
            for start in range(0, len(ids), 500):
                gone += conn.execute(delete(t).where(t.c.id.in_(ids[start : start + 500]))).rowcount
            return gone
