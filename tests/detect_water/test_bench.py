"""``run_batadal`` end to end: scores on dataset04 and a report for the test dataset."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from civicguard.benchmarks.batadal import RULES_TRUTH, run_batadal
from civicguard.detect.water import __all__ as public
from civicguard.detect.water import detector


def test_water_package_exports_its_public_api() -> None:
    assert "LiveWaterWatch" in public
    assert detector.LiveWaterWatch.__name__ in public


@pytest.mark.slow
def test_bench_scores_dataset04_and_reports_the_test_dataset(
    batadal_dir: Path, tmp_path: Path
) -> None:
    result = run_batadal(tmp_path, batadal_dir)
    assert result["truth_used"] == RULES_TRUTH == "attack_windows"
    tuned = result["tuned_on_04"][RULES_TRUTH]
    honest = result["normal_only"][RULES_TRUTH]
    crossed = result["cross_validated"][RULES_TRUTH]
    assert tuned["S"] >= max(honest["S"], crossed["S"]) - 1e-9
    assert honest["S"] > 0.95
    assert len(honest["TTD_hours"]) == 7
    lines = (tmp_path / "batadal_test_report.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == result["test_events"] > 0
    row = re.compile(r"^\d+,\d\d-\d\d-\d\d \d\d,\d\d-\d\d-\d\d \d\d,[A-Za-z0-9 ]+$")
    assert all(row.match(line) for line in lines)
    assert [int(line.split(",")[0]) for line in lines] == list(range(1, len(lines) + 1))
