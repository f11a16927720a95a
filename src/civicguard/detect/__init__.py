"""Detection: the detector contract, the live detectors and the registry the pipeline runs."""

from civicguard.detect.anomaly import AnomalySettings, StreamingAnomalyDetector
from civicguard.detect.band import NormalBandDetector
from civicguard.detect.base import DetectContext, Detector, SlotIndex
from civicguard.detect.flood import FloodDetector
from civicguard.detect.model import Alert, Severity
from civicguard.detect.rate import RateOfChangeDetector
from civicguard.detect.registry import default_detectors
from civicguard.detect.replay import ReplayDetector
from civicguard.detect.rules import RuleDetector
from civicguard.detect.silence import SilenceDetector

__all__ = [
    "Alert",
    "AnomalySettings",
    "DetectContext",
    "Detector",
    "FloodDetector",
    "NormalBandDetector",
    "RateOfChangeDetector",
    "ReplayDetector",
    "RuleDetector",
    "Severity",
    "SilenceDetector",
    "SlotIndex",
    "StreamingAnomalyDetector",
    "default_detectors",
]
