"""The explicit list of detectors the pipeline runs; the contract test runs over all of them."""

from __future__ import annotations

from collections.abc import Callable

from civicguard.catalog.model import Catalog
from civicguard.detect.anomaly import StreamingAnomalyDetector
from civicguard.detect.band import NormalBandDetector
from civicguard.detect.base import Detector
from civicguard.detect.flood import FloodDetector
from civicguard.detect.rate import RateOfChangeDetector
from civicguard.detect.replay import ReplayDetector
from civicguard.detect.rules import RuleDetector
from civicguard.detect.silence import SilenceDetector
from civicguard.ingest.model import Device


def default_detectors(catalog: Catalog, device: Callable[[str], Device | None]) -> list[Detector]:
    """Every detector of the live pipeline, configured from the catalog.

    >>> from civicguard.catalog.loader import demo_catalog
    >>> [d.name for d in default_detectors(demo_catalog(), lambda device_id: None)]
    ['normal_band', 'rate_of_change', 'rules', 'streaming_anomaly', 'flood', 'silence', 'replay']
    """
    return [
        NormalBandDetector(catalog, device),
        RateOfChangeDetector(catalog, device),
        RuleDetector(catalog, device),
        StreamingAnomalyDetector(catalog, device),
        FloodDetector(catalog, device),
        SilenceDetector(catalog, device),
        ReplayDetector(catalog, device),
    ]
