"""The seasonal member's logarithmic compression of huge surprises."""

from __future__ import annotations

import math

import numpy as np
import pytest

from civicguard.detect.univariate import SeasonalProfile

STEP_S = 3600.0


def flat_with_jumps(jumps: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A nearly flat hourly stream for three weeks, then one point per jump size."""
    rng = np.random.default_rng(3)
    base = 100.0 + rng.normal(0.0, 0.01, 24 * 21)
    values = np.concatenate([base, 100.0 + np.asarray(jumps)])
    return values, np.arange(values.size) * STEP_S


def surprises(profile: SeasonalProfile, values: np.ndarray, ts: np.ndarray) -> np.ndarray:
    slots = np.zeros(1, dtype=np.intp)
    profile.reserve(1)
    return np.array(
        [profile.surprise(slots, values[i : i + 1], ts[i : i + 1])[0] for i in range(values.size)]
    )


def test_compression_is_identity_below_the_bound_and_logarithmic_beyond() -> None:
    values, ts = flat_with_jumps([0.02, 5.0, 50.0])
    plain = surprises(SeasonalProfile(), values, ts)
    bound = 10.0
    squeezed = surprises(SeasonalProfile(compress_above=bound), values, ts)
    small = plain <= bound
    assert small.sum() > 400 and np.array_equal(plain[small], squeezed[small])
    big = ~small
    # Both jumps are far beyond the bound on this flat stream; their ratio shrinks to the
    # ratio of logarithms, and the order stays.
    assert plain[-1] > plain[-2] > 10 * bound
    expected = bound * (1.0 + np.log(plain[big] / bound))
    np.testing.assert_allclose(squeezed[big], expected)
    assert squeezed[-1] > squeezed[-2]
    assert squeezed[-1] / squeezed[-2] < plain[-1] / plain[-2]


@pytest.mark.parametrize("bound", [0.0, -1.0, math.nan])
def test_a_bound_that_is_not_positive_is_refused(bound: float) -> None:
    with pytest.raises(ValueError, match="compress_above must be positive"):
        SeasonalProfile(compress_above=bound)
