"""Hourly SCADA tables of a water network, as the BATADAL files hold them.

Columns follow the SCADA tags: ``L_T1`` tank level (m), ``F_PU1`` pump flow (L/s), ``S_PU1``
pump status (0/1), ``F_V2``/``S_V2`` valve flow and status, ``P_J280`` junction pressure (m).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

#: BATADAL's timestamp format (``04/07/16 00``): day, month, two-digit year, hour.
TIME_FORMAT = "%d/%m/%y %H"


def parse_time(text: str) -> float:
    """Unix seconds of a BATADAL timestamp, read as UTC (the files carry no zone)."""
    return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=UTC).timestamp()


def format_time(ts: float) -> str:
    """A Unix time in BATADAL's ``dd/mm/yy HH`` form (UTC).

    >>> format_time(parse_time("13/09/16 23"))
    '13/09/16 23'
    """
    return datetime.fromtimestamp(ts, tz=UTC).strftime(TIME_FORMAT)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScadaTable:
    """Readings of one period: one row per hour, one column per SCADA tag."""

    columns: tuple[str, ...]
    ts: np.ndarray  # (n,) Unix seconds
    values: np.ndarray  # (n, len(columns))
    #: ``ATT_FLAG`` where the file has it (1 attack, 0 normal, -999 unlabelled).
    labels: np.ndarray | None = None

    def column(self, name: str) -> np.ndarray:
        """All readings of one tag."""
        return self.values[:, self.columns.index(name)]

    def __len__(self) -> int:
        return len(self.ts)


def read_scada_csv(path: Path) -> ScadaTable:
    """Read a BATADAL CSV (``DATETIME``, tags..., optional ``ATT_FLAG``)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if r]
    has_flag = header[-1] == "ATT_FLAG"
    tags = header[1:-1] if has_flag else header[1:]
    ts = np.array([parse_time(r[0]) for r in body])
    values = np.array([[float(x) for x in r[1 : 1 + len(tags)]] for r in body], dtype=float)
    labels = np.array([float(r[-1]) for r in body]) if has_flag else None
    return ScadaTable(columns=tuple(tags), ts=ts, values=values, labels=labels)
