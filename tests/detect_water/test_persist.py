"""A fitted model saved and loaded judges every hour exactly as the model it came from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from civicguard.detect.water.detector import WaterAttackModel, detect_batch, full_evidence
from civicguard.detect.water.persist import FORMAT, ModelFileError, load_model, save_model
from civicguard.detect.water.scada import ScadaTable


def test_a_loaded_model_gives_the_same_evidence_and_verdicts(
    model: WaterAttackModel, attacked: ScadaTable, tmp_path: Path
) -> None:
    path = tmp_path / "water.json"
    save_model(model, path)
    loaded = load_model(path)
    assert loaded.names == model.names
    assert loaded.settings == model.settings
    np.testing.assert_array_equal(full_evidence(loaded, attacked), full_evidence(model, attacked))
    assert detect_batch(loaded, attacked) == detect_batch(model, attacked)


def test_the_file_is_plain_json_without_code(model: WaterAttackModel, tmp_path: Path) -> None:
    path = tmp_path / "water.json"
    save_model(model, path)
    state = json.loads(path.read_text(encoding="utf-8"))
    assert state["format"] == FORMAT
    assert state["columns"] == list(model.columns)
    assert len(state["thresholds"]) == len(model.thresholds)


def test_bad_files_are_refused_saying_which_and_why(
    model: WaterAttackModel, tmp_path: Path
) -> None:
    path = tmp_path / "water.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"water\.json: not JSON"):
        load_model(path)
    path.write_text(json.dumps({"format": "something-else/9"}), encoding="utf-8")
    with pytest.raises(ModelFileError, match="format 'something-else/9'"):
        load_model(path)
    save_model(model, path)
    state = json.loads(path.read_text(encoding="utf-8"))
    del state["thresholds"]
    path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"damaged.*thresholds"):
        load_model(path)
