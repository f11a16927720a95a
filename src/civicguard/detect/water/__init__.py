"""Attack detection for water networks: topology, physics checks, cross-checks and scoring."""

from civicguard.detect.water.detector import (
    HourVerdict,
    LiveWaterWatch,
    WatchSettings,
    WaterAttackModel,
    detect_batch,
)
from civicguard.detect.water.network import WaterNetwork, load_inp, parse_inp
from civicguard.detect.water.persist import ModelFileError, load_model, save_model
from civicguard.detect.water.scada import ScadaTable, read_scada_csv

__all__ = [
    "HourVerdict",
    "LiveWaterWatch",
    "ModelFileError",
    "ScadaTable",
    "WatchSettings",
    "WaterAttackModel",
    "WaterNetwork",
    "detect_batch",
    "load_inp",
    "load_model",
    "parse_inp",
    "read_scada_csv",
    "save_model",
]
