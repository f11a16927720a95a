"""Anomaly detectors for single streams, learning per stream online, with no labels.

Each detector keeps its state in arrays indexed by stream slot and scores a batch of points
at once, each point using only the points of its stream up to itself::

    detector = Ensemble()
    scores = detector.update(slots, values, ts)  # anomaly scores in [0, 1]
"""

from civicguard.detect.univariate._base import (
    SlotState,
    UnivariateDetector,
    surprise_score,
)
from civicguard.detect.univariate._baseline import Baseline
from civicguard.detect.univariate._context import ContextNovelty
from civicguard.detect.univariate._cusum import ChangePoint
from civicguard.detect.univariate._ensemble import Ensemble, EnsembleSettings, default_members
from civicguard.detect.univariate._entropy import RelativeEntropy
from civicguard.detect.univariate._layered import Layered
from civicguard.detect.univariate._likelihood import Likelihood, RunningLikelihood
from civicguard.detect.univariate._neighbours import WindowNeighbours
from civicguard.detect.univariate._predictor import LinearPredictor
from civicguard.detect.univariate._resonance import Resonance, ResonanceSettings
from civicguard.detect.univariate._seasonal import SeasonalProfile
from civicguard.detect.univariate._smoothed import Smoothed
from civicguard.detect.univariate._zscore import RobustZScore

__all__ = [
    "Baseline",
    "ChangePoint",
    "ContextNovelty",
    "Ensemble",
    "EnsembleSettings",
    "Layered",
    "Likelihood",
    "LinearPredictor",
    "RelativeEntropy",
    "Resonance",
    "ResonanceSettings",
    "RobustZScore",
    "RunningLikelihood",
    "SeasonalProfile",
    "SlotState",
    "Smoothed",
    "UnivariateDetector",
    "WindowNeighbours",
    "default_members",
    "surprise_score",
]
