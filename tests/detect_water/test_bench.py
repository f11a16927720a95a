"""``run_batadal`` end to end: scores on dataset04 and a report for the test dataset."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from civicguard.benchmarks.batadal import run_batadal
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
    tuned = result["tuned_on_04"]["flagged_hours"]
    honest = result["normal_only"]["flagged_hours"]
    assert tuned["S"] >= honest["S"]
    assert honest["S"] > 0.9
    lines = (tmp_path / "batadal_test_report.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,start,end"
    assert len(lines) - 1 == result["test_events"] > 0
    row = re.compile(r"^\d+,\d\d/\d\d/\d\d \d\d,\d\d/\d\d/\d\d \d\d$")
    assert all(row.match(line) for line in lines[1:])
