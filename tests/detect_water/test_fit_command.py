"""``civicguard water fit``: the saved model is the one fitted on the normal year."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from civicguard.detect.water.detector import WaterAttackModel, detect_batch
from civicguard.detect.water.persist import load_model
from civicguard.detect.water.scada import ScadaTable

CLI = str(Path(sys.executable).with_name("civicguard"))


def fit(*args: str) -> subprocess.CompletedProcess[str]:
    """``civicguard water fit ARGS``, captured."""
    return subprocess.run(
        [CLI, "water", "fit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=os.environ | {"COLUMNS": "200"},
    )


def test_fit_writes_a_model_that_judges_like_the_one_fitted_here(
    batadal_dir: Path, model: WaterAttackModel, attacked: ScadaTable, tmp_path: Path
) -> None:
    out = tmp_path / "models" / "water.json"
    done = fit("--out", str(out), "--data", str(batadal_dir))
    assert done.returncode == 0, done.stderr
    loaded = load_model(out)
    assert detect_batch(loaded, attacked) == detect_batch(model, attacked)
    flagged = sum(v.under_attack for v in detect_batch(model, attacked))
    assert f"{flagged} of {len(attacked)} hours flagged" in done.stdout


def test_fit_names_the_missing_files(tmp_path: Path) -> None:
    (tmp_path / "CTOWN.INP").write_text("[TANKS]\n", encoding="utf-8")
    done = fit("--out", str(tmp_path / "water.json"), "--data", str(tmp_path))
    assert done.returncode != 0
    assert "BATADAL_dataset03.csv" in done.stderr and "CTOWN.INP" not in done.stderr
    assert not (tmp_path / "water.json").exists()
