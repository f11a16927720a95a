"""The NAB corpus on disk: data files, their labelled anomaly windows, and detector outputs.

NAB's timestamps carry no time zone; we read them as UTC so that they become the Unix
seconds the rest of the platform passes around. Scoring itself only needs row positions.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

#: NAB's ``probationaryPercent``: the start of each file where detectors are still learning.
PROBATIONARY_PERCENT = 0.15
#: NAB caps the probationary period at 15 % of 5000 rows.
PROBATIONARY_CAP_ROWS = 5000


def probationary_rows(row_count: int) -> int:
    """Rows at the start of a file that NAB does not score.

    >>> probationary_rows(1000), probationary_rows(22695)
    (150, 750)
    """
    return int(
        min(
            math.floor(PROBATIONARY_PERCENT * row_count),
            PROBATIONARY_PERCENT * PROBATIONARY_CAP_ROWS,
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class DataFile:
    """One series of the corpus with its anomaly windows as inclusive row ranges."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def probation(self) -> int:
        """Rows at the start of this file that are not scored."""
        return probationary_rows(len(self))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Corpus:
    """The NAB data files, sorted by name (``category/file.csv``)."""

    files: tuple[DataFile, ...]

    @property
    def window_count(self) -> int:
        """Anomaly windows in the whole corpus; a perfect detector earns one TP weight each."""
        return sum(len(f.windows) for f in self.files)

    def names(self) -> tuple[str, ...]:
        """The file names, in corpus order."""
        return tuple(f.name for f in self.files)


def parse_timestamps(texts: Iterable[str]) -> np.ndarray:
    """NAB timestamp strings as integer microseconds since the epoch (read as UTC)."""
    stamps = np.array(list(texts), dtype="datetime64[us]")
    return stamps.astype(np.int64)


def _window_rows(
    name: str, micros: np.ndarray, windows: list[list[str]]
) -> tuple[tuple[int, int], ...]:
    """Map window limits to row indices; NAB draws window edges on existing rows.

    Timestamps are not always increasing (one AWS series repeats an hour at a DST change,
    one machine series steps back once), so an edge is found by equality, not by bisection,
    and a repeated timestamp maps to its first row, as NAB's lookup by timestamp does.
    """
    rows: list[tuple[int, int]] = []
    for start_text, end_text in windows:
        at = []
        for limit in parse_timestamps((start_text, end_text)):
            matches = np.flatnonzero(micros == limit)
            if matches.size == 0:
                msg = f"{name}: window edge {limit} is not a row of the file"
                raise ValueError(msg)
            at.append(int(matches[0]))
        if at[1] < at[0]:
            msg = f"{name}: window ends before it starts"
            raise ValueError(msg)
        rows.append((at[0], at[1]))
    rows.sort()
    for (_, end), (start, _) in itertools.pairwise(rows):
        if start <= end:
            msg = f"{name}: anomaly windows overlap"
            raise ValueError(msg)
    return tuple(rows)


def _read_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (microseconds) and values of one ``timestamp,value`` file."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if header[:2] != ["timestamp", "value"]:
            msg = f"{path}: expected a timestamp,value header, got {header}"
            raise ValueError(msg)
        stamps, values = zip(*((row[0], row[1]) for row in reader), strict=True)
    return parse_timestamps(stamps), np.array(values, dtype=np.float64)


def load_corpus(nab_dir: Path, windows_file: str = "labels/combined_windows.json") -> Corpus:
    """Read the corpus under ``nab_dir`` (``data/`` and the windows file NAB scores with)."""
    labelled: dict[str, list[list[str]]] = json.loads(
        (nab_dir / windows_file).read_text(encoding="utf-8")
    )
    files = []
    for name in sorted(labelled):
        micros, values = _read_series(nab_dir / "data" / name)
        files.append(
            DataFile(
                name=name,
                timestamps=micros / 1e6,
                values=values,
                windows=_window_rows(name, micros, labelled[name]),
            )
        )
    return Corpus(files=tuple(files))


def _results_name(member: str) -> str | None:
    """``detector/category/detector_file.csv`` to the corpus name ``category/file.csv``."""
    parts = PurePosixPath(member).parts
    if len(parts) < 3 or not parts[-1].endswith(".csv"):
        return None
    detector, category, filename = parts[-3], parts[-2], parts[-1]
    prefix = detector + "_"
    if not filename.startswith(prefix):
        return None
    return f"{category}/{filename.removeprefix(prefix)}"


def _read_anomaly_scores(text: str) -> np.ndarray:
    """The ``anomaly_score`` column of one NAB results file."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    column = header.index("anomaly_score")
    return np.array([row[column] for row in reader], dtype=np.float64)


def load_results(archive: Path) -> dict[str, np.ndarray]:
    """A detector's ``anomaly_score`` per corpus file, read from NAB's results tar.gz.

    Members are ``<detector>/<category>/<detector>_<file>.csv`` (optionally under a
    ``results/`` folder); other members, such as per-profile score summaries, are ignored.
    """
    scores: dict[str, np.ndarray] = {}
    with tarfile.open(archive, mode="r:gz") as tar:
        for member in tar:
            name = _results_name(member.name) if member.isfile() else None
            if name is None:
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            with handle:
                scores[name] = _read_anomaly_scores(handle.read().decode("utf-8"))
    return scores
