"""Two detectors as one score: a sparse, sure detector's alarms laid over the ensemble's."""

from __future__ import annotations

import numpy as np

from civicguard.detect.univariate._base import FloatArray, IndexArray, UnivariateDetector
from civicguard.detect.univariate._ensemble import Ensemble
from civicguard.detect.univariate._resonance import Resonance


class Layered(UnivariateDetector):
    """The ensemble's score, raised where a second detector is sure of an anomaly.

    The ensemble scores 0.5 for a new record of one of its members and 0.9 or more for a new
    extreme of the stream. The second detector (by default :class:`Resonance`, ARTime's
    family) is silent on most points and, on an anomaly, gives a confidence ``c`` in (0, 1],
    laid over the ensemble as ``lift + scale * c``: by default 0.4 + 0.4 c, from under a
    member's record for a weak anomaly to 0.8 for a sure one. NAB's low-FP profile chooses a
    threshold above the members' records and keeps the resonance's sure anomalies and the
    new extremes; the other profiles keep the records too. ``lift`` and ``scale`` were chosen
    on half A of NAB (see ``bench nab``).

    Each part sees every point of the stream, whatever the other made of it.
    """

    name = "civicguard"

    def __init__(
        self,
        base: UnivariateDetector | None = None,
        over: UnivariateDetector | None = None,
        *,
        lift: float = 0.4,
        scale: float = 0.4,
    ) -> None:
        super().__init__(())
        self.base = self.part(base if base is not None else Ensemble())
        self.over = self.part(over if over is not None else Resonance())
        self.lift = lift
        self.scale = scale

    def to_score(self, surprise: FloatArray) -> FloatArray:
        """The layered value is a score already."""
        return surprise

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots`` with both parts; the higher score."""
        below = self.base.to_score(self.base.surprise(slots, values, ts))
        return self.lay(below, self.over.to_score(self.over.surprise(slots, values, ts)))

    def lay(self, below: FloatArray, sure: FloatArray) -> FloatArray:
        """The layered score from the two parts' scores of the same points.

        The parts never see each other's scores, so they may also run apart (in two
        processes, as ``bench nab`` does) and be laid together afterwards.
        """
        laid: FloatArray = np.where(sure > 0.0, self.lift + self.scale * sure, 0.0)
        result: FloatArray = np.maximum(below, laid)
        return result
