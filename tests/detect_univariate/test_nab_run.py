"""``run_nab``: the ensemble over NAB files, written in NAB's layout and scored by our scorer."""

from __future__ import annotations

import csv
import json
import math
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from civicguard.benchmarks.nab import Corpus, DataFile, load_corpus, load_results
from civicguard.benchmarks.nab_run import (
    detect_corpus,
    detect_corpus_in_parallel,
    run_nab,
    write_results,
)
from civicguard.detect.univariate import Layered
from tests.conftest import SHARED_DATA
from tests.services import missing_data

NAB = SHARED_DATA / "nab"
#: Small files with windows, from three categories.
FEW = (
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "realKnownCause/ambient_temperature_system_failure.csv",
    "realTraffic/speed_7578.csv",
)


def small_file(name: str, rows: int, windows: tuple[tuple[int, int], ...]) -> DataFile:
    start = 1_396_310_400.0  # 2014-04-01 00:00:00 UTC
    return DataFile(
        name=name,
        timestamps=start + np.arange(rows) * 300.0,
        values=np.linspace(0.0, 1.0, rows),
        windows=windows,
    )


def test_writer_uses_nab_layout_and_columns(tmp_path: Path) -> None:
    corpus = Corpus(
        files=(
            small_file("realTraffic/speed_a.csv", 20, ((5, 8),)),
            small_file("artificialNoAnomaly/flat_b.csv", 10, ()),
        )
    )
    scores = {f.name: np.linspace(0.0, 1.0, len(f)) for f in corpus.files}
    written = write_results(tmp_path, "civicguard", corpus, scores)
    assert written == [
        tmp_path / "civicguard" / "realTraffic" / "civicguard_speed_a.csv",
        tmp_path / "civicguard" / "artificialNoAnomaly" / "civicguard_flat_b.csv",
    ]
    with written[0].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["timestamp", "value", "anomaly_score", "label"]
    assert len(rows) == 21
    assert rows[1][0] == "2014-04-01 00:00:00"
    assert rows[2][0] == "2014-04-01 00:05:00"
    assert [int(r[3]) for r in rows[1:]] == [1 if 5 <= i <= 8 else 0 for i in range(20)]
    # NAB's own results archives are read back by the scorer's loader to the same scores.
    archive = tmp_path / "results.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "civicguard", arcname="results/civicguard")
    loaded = load_results(archive)
    assert sorted(loaded) == sorted(scores)
    for name, column in scores.items():
        np.testing.assert_allclose(loaded[name], column, atol=1e-6)


@pytest.fixture(scope="module")
def few_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NAB folder holding only ``FEW``, with their windows."""
    windows_file = NAB / "labels" / "combined_windows.json"
    if not windows_file.is_file():
        message = f"the NAB corpus is not at {NAB} (see shared/data/README.md)"
        missing_data(message)
    root = tmp_path_factory.mktemp("nab")
    windows = json.loads(windows_file.read_text(encoding="utf-8"))
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps({name: windows[name] for name in FEW}), encoding="utf-8"
    )
    for name in FEW:
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(NAB / "data" / name, root / "data" / name)
    return root


def test_run_nab_writes_and_scores_a_few_files(few_files: Path, tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    result = run_nab(tmp_path / "out", few_files, console=console)
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert math.isfinite(result[profile])
        assert -1000.0 < result[profile] <= 100.0
    corpus = load_corpus(few_files)
    assert result["points"] == sum(len(f) for f in corpus.files)
    for name in FEW:
        category, filename = name.split("/")
        out = tmp_path / "out" / "civicguard" / category / f"civicguard_{filename}"
        with out.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        data = next(f for f in corpus.files if f.name == name)
        assert len(rows) == len(data)
        scores = np.array([float(r["anomaly_score"]) for r in rows])
        assert np.all((scores >= 0.0) & (scores <= 1.0))
        assert scores.max() > 0.0
    printed = console.export_text()
    assert "ARTime" in printed
    assert "points/s" in printed


def test_files_run_together_score_as_each_alone(few_files: Path) -> None:
    # The two shorter files keep this fast; two streams suffice to show independence.
    full = load_corpus(few_files)
    corpus = Corpus(files=tuple(f for f in full.files if "ambient" not in f.name))
    together = detect_corpus(corpus)
    for data in corpus.files:
        alone = detect_corpus(Corpus(files=(data,)))
        np.testing.assert_allclose(together[data.name], alone[data.name], atol=1e-12)


def test_the_parts_run_apart_score_as_the_detector_run_whole(few_files: Path) -> None:
    full = load_corpus(few_files)
    corpus = Corpus(files=tuple(f for f in full.files if "ambient" not in f.name))
    whole = detect_corpus(corpus, Layered())
    apart = detect_corpus_in_parallel(corpus, Layered())
    assert whole.keys() == apart.keys()
    for name, scores in whole.items():
        np.testing.assert_array_equal(apart[name], scores)
