"""The explicit list of detectors the pipeline runs; the contract test runs over all of them."""

from __future__ import annotations

from collections.abc import Callable

from civicguard.catalog.model import Catalog
from civicguard.detect.anomaly import StreamingAnomalyDetector
from civicguard.detect.auth import AuthFailureDetector
from civicguard.detect.band import NormalBandDetector
from civicguard.detect.base import Detector
from civicguard.detect.clock_skew import ClockSkewDetector
from civicguard.detect.crowd import CrowdOverCapacityDetector
from civicguard.detect.doors import DoorHeldOpenDetector
from civicguard.detect.flood import FloodDetector
from civicguard.detect.forecast import SurgeForecastDetector
from civicguard.detect.impossible import ImpossibleValueDetector
from civicguard.detect.place import WrongPlaceDetector
from civicguard.detect.rate import RateOfChangeDetector
from civicguard.detect.replay import ReplayDetector
from civicguard.detect.restricted import RestrictedZoneDetector
from civicguard.detect.rules import RuleDetector
from civicguard.detect.silence import SilenceDetector
from civicguard.detect.univariate_live import PatternAnomalyDetector
from civicguard.detect.water.detector import WaterAttackModel
from civicguard.detect.water_live import WaterAttackDetector
from civicguard.ingest.model import Device


def default_detectors(
    catalog: Catalog,
    device: Callable[[str], Device | None],
    water_model: WaterAttackModel | None = None,
) -> list[Detector]:
    """Every detector of the live pipeline, configured from the catalog.

    ``water_attack`` runs only with a fitted ``water_model`` (``civicguard water fit``).

    >>> from civicguard.catalog.loader import demo_catalog
    >>> names = [d.name for d in default_detectors(demo_catalog(), lambda device_id: None)]
    >>> names[:8]  # doctest: +NORMALIZE_WHITESPACE
    ['normal_band', 'rate_of_change', 'rules', 'streaming_anomaly', 'pattern_anomaly',
     'flood', 'silence', 'replay']
    >>> fleet = {"auth_failures", "wrong_place", "clock_skew", "impossible_value"}
    >>> fleet <= set(names), len(set(names)) == len(names)
    (True, True)
    >>> {"door_held_open", "restricted_zone", "crowd_capacity", "surge_forecast"} <= set(names)
    True
    """
    detectors: list[Detector] = [
        NormalBandDetector(catalog, device),
        RateOfChangeDetector(catalog, device),
        RuleDetector(catalog, device),
        StreamingAnomalyDetector(catalog, device),
        PatternAnomalyDetector(catalog, device),
        FloodDetector(catalog, device),
        SilenceDetector(catalog, device),
        ReplayDetector(catalog, device),
        AuthFailureDetector(catalog, device),
        WrongPlaceDetector(catalog, device),
        ClockSkewDetector(catalog, device),
        ImpossibleValueDetector(catalog, device),
        DoorHeldOpenDetector(catalog, device),
        RestrictedZoneDetector(catalog, device),
        CrowdOverCapacityDetector(catalog, device),
        SurgeForecastDetector(catalog, device),
    ]
    if water_model is not None:
        detectors.append(WaterAttackDetector(catalog, device, water_model))
    return detectors
