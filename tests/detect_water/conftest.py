"""BATADAL data and a detector fitted on its normal year, shared by the water tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from civicguard.detect.water.detector import WatchSettings, WaterAttackModel
from civicguard.detect.water.network import WaterNetwork, load_inp
from civicguard.detect.water.scada import ScadaTable, read_scada_csv
from tests.conftest import SHARED_DATA
from tests.services import missing_data

BATADAL = SHARED_DATA / "batadal"


@pytest.fixture(scope="session")
def batadal_dir() -> Path:
    """The BATADAL folder of the shared data (skip, or fail under CI, when absent)."""
    if not (BATADAL / "BATADAL_dataset04.csv").is_file():
        message = f"the BATADAL data is not at {BATADAL} (see shared/data/README.md)"
        missing_data(message)
    return BATADAL


@pytest.fixture(scope="session")
def ctown(batadal_dir: Path) -> WaterNetwork:
    """C-Town's topology."""
    return load_inp(batadal_dir / "CTOWN.INP")


@pytest.fixture(scope="session")
def normal_year(batadal_dir: Path) -> ScadaTable:
    """dataset03: one year without attacks."""
    return read_scada_csv(batadal_dir / "BATADAL_dataset03.csv")


@pytest.fixture(scope="session")
def attacked(batadal_dir: Path) -> ScadaTable:
    """dataset04: six months with seven attacks."""
    return read_scada_csv(batadal_dir / "BATADAL_dataset04.csv")


@pytest.fixture(scope="session")
def model(ctown: WaterNetwork, normal_year: ScadaTable) -> WaterAttackModel:
    """The detector learned on the normal year, default settings."""
    fitted = WaterAttackModel(ctown, normal_year.columns, WatchSettings())
    fitted.fit(normal_year)
    return fitted


@pytest.fixture(scope="session")
def model_file(model: WaterAttackModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's model saved as ``civicguard water fit`` saves one."""
    from civicguard.detect.water.persist import save_model

    path = tmp_path_factory.mktemp("water") / "model.json"
    save_model(model, path)
    return path
