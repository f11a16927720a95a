"""Two detectors as one score: a sparse, sure detector's alarms laid over the ensemble's."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

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
    new extremes; the other profiles keep the records too.

    An anomaly of the second detector that comes within ``horizon`` points of the ensemble
    scoring at least ``corroborate_from`` (a member's record, or within a fifth of one) is
    corroborated: two detectors that look at different things (single readings against
    their record, the shape of a window against the categories of shapes seen) saw
    something at nearly the same time, and the anomaly is laid ``corroboration`` higher.
    The horizon covers two blocks of the resonance's coarsest step (7 readings), since it
    sees a reading only when the block that holds it is complete. On NAB, 3 more windows were
    found at the standard profile's threshold (nyc_taxi's, two Twitter volumes'), for 26
    more false positives. ``lift``, ``scale`` and the corroboration's settings were chosen
    on half A of NAB (see ``bench nab``).

    Each part sees every point of the stream, whatever the other made of it.
    """

    name = "civicguard"
    #: Points since the ensemble last scored at least ``corroborate_from``, per stream.
    since: FloatArray

    def __init__(
        self,
        base: UnivariateDetector | None = None,
        over: UnivariateDetector | None = None,
        *,
        lift: float = 0.4,
        scale: float = 0.4,
        corroboration: float = 0.05,
        corroborate_from: float = 0.45,
        horizon: int = 15,
    ) -> None:
        super().__init__((("since", (), np.inf),))
        self.base = self.part(base if base is not None else Ensemble())
        self.over = self.part(over if over is not None else Resonance())
        self.lift = lift
        self.scale = scale
        self.corroboration = corroboration
        self.corroborate_from = corroborate_from
        self.horizon = horizon

    def to_score(self, surprise: FloatArray) -> FloatArray:
        """The layered value is a score already."""
        return surprise

    def surprise(self, slots: IndexArray, values: FloatArray, ts: FloatArray) -> FloatArray:
        """Score then learn one point of each of ``slots`` with both parts; the layered score."""
        below = self.base.to_score(self.base.surprise(slots, values, ts))
        sure = self.over.to_score(self.over.surprise(slots, values, ts))
        return self.lay(slots, below, sure)

    def corroborating(self, slots: IndexArray) -> npt.NDArray[np.bool_]:
        """Whether an anomaly laid now on each of ``slots`` would be corroborated."""
        result: npt.NDArray[np.bool_] = self.since[slots] < self.horizon
        return result

    def lay(self, slots: IndexArray, below: FloatArray, sure: FloatArray) -> FloatArray:
        """The layered score of one point of each of ``slots`` from the two parts' scores.

        The parts never see each other's scores, so they may also run apart (in two
        processes, as ``bench nab`` does) and be laid together afterwards, point by point
        in each stream's order (``slots`` distinct and reserved).
        """
        since = np.where(below >= self.corroborate_from, 0.0, self.since[slots] + 1.0)
        self.since[slots] = since
        corroborated = np.where(self.corroborating(slots), self.corroboration, 0.0)
        laid: FloatArray = np.where(sure > 0.0, self.lift + self.scale * sure + corroborated, 0.0)
        result: FloatArray = np.maximum(below, laid)
        return result
