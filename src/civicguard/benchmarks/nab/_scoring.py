"""NAB's scoring rules: rewards inside anomaly windows, costs outside, one threshold per profile.

The rules follow NAB's ``Sweeper`` (v1.1): a flagged row inside a window earns a scaled
sigmoid of its position (earliest best; only the best row of a window counts), a flagged
row outside any window costs the FP weight scaled by the sigmoid of its distance after
the preceding window, a window with no flagged row costs the FN weight, and the first
``probationary_rows`` of each file count for nothing. The threshold on ``anomaly_score``
is chosen per profile for the whole corpus by trying every distinct score, which is what
NAB's optimiser does, here with cumulative sums instead of a Python loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from civicguard.benchmarks.nab._corpus import Corpus, DataFile
from civicguard.benchmarks.nab._profiles import PROFILES, Profile

#: Beyond three window widths after a window a false positive costs the full FP weight.
_FAR_PAST_WINDOW = 3.0
#: The anomaly score NAB's null detector gives every row.
NULL_SCORE = 0.5


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's reward curve: 2 * sigmoid(-5 x) - 1, and -1 beyond three window widths.

    ``x`` is -1 at the start of a window, just under 0 at its end, and positive (in
    window widths) after it.

    >>> scaled_sigmoid(np.array([-1.0, 0.0, 3.5])).round(4).tolist()
    [0.9866, 0.0, -1.0]
    """
    x = np.asarray(position, dtype=np.float64)
    # Clip before exp: far positions are overridden below and must not overflow.
    curve = 2.0 / (1.0 + np.exp(5.0 * np.minimum(x, _FAR_PAST_WINDOW))) - 1.0
    return np.where(x > _FAR_PAST_WINDOW, -1.0, curve)


#: What the earliest possible detection earns before weighting; it is scaled to the TP weight.
MAX_TP_REWARD = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RowRules:
    """What flagging each row would earn, before profile weights.

    ``window`` is the corpus-wide window number of a scored row inside a window, else -1.
    ``reward`` is the scaled sigmoid: positive inside windows, negative outside, and 0 in
    the probationary period (those rows are never scored).
    """

    window: np.ndarray
    reward: np.ndarray


def file_rules(data: DataFile, first_window: int = 0) -> RowRules:
    """The row rules of one file, numbering its windows from ``first_window``."""
    n = len(data)
    rows = np.arange(n)
    window = np.full(n, -1, dtype=np.intp)
    reward = np.empty(n, dtype=np.float64)
    if data.windows:
        starts = np.array([w[0] for w in data.windows])
        ends = np.array([w[1] for w in data.windows])
    else:
        starts = ends = np.empty(0, dtype=np.intp)
    widths = ends - starts + 1
    for k, (start, end) in enumerate(data.windows):
        inside = slice(start, end + 1)
        window[inside] = first_window + k
        reward[inside] = scaled_sigmoid(-(end - rows[inside] + 1) / widths[k])
    outside = window < 0
    # The window that ended last before each row; -1 when none has yet.
    previous = np.searchsorted(ends, rows[outside], side="left") - 1
    after = previous >= 0
    distance = np.full(previous.shape, np.inf)
    # NAB divides by (width - 1); a one-row window would divide by zero there.
    span = np.maximum(widths[previous[after]] - 1, 1)
    distance[after] = (rows[outside][after] - ends[previous[after]]) / span
    reward[outside] = np.where(after, scaled_sigmoid(distance), -1.0)
    window[: data.probation] = -1
    reward[: data.probation] = 0.0
    return RowRules(window=window, reward=reward)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class _CorpusRules:
    """Row rules of the whole corpus, files concatenated in corpus order."""

    rules: RowRules
    file_of_row: np.ndarray
    file_of_window: np.ndarray
    scored_windows: np.ndarray


@lru_cache(maxsize=4)
def _corpus_rules(corpus: Corpus) -> _CorpusRules:
    parts = []
    first = 0
    for data in corpus.files:
        parts.append(file_rules(data, first))
        first += len(data.windows)
    window = np.concatenate([p.window for p in parts])
    file_of_window = np.repeat(np.arange(len(corpus.files)), [len(f.windows) for f in corpus.files])
    scored = np.zeros(first, dtype=bool)
    # A window lying wholly in the probationary period is neither earned nor missed.
    scored[window[window >= 0]] = True
    return _CorpusRules(
        rules=RowRules(window=window, reward=np.concatenate([p.reward for p in parts])),
        file_of_row=np.repeat(np.arange(len(corpus.files)), [len(f) for f in corpus.files]),
        file_of_window=file_of_window,
        scored_windows=scored,
    )


def _stack(corpus: Corpus, scores_by_file: Mapping[str, np.ndarray]) -> np.ndarray:
    """The detector's scores of every row, concatenated in corpus order."""
    columns = []
    for data in corpus.files:
        try:
            column = np.asarray(scores_by_file[data.name], dtype=np.float64)
        except KeyError:
            msg = f"no anomaly scores for {data.name}"
            raise KeyError(msg) from None
        if column.shape != (len(data),):
            msg = f"{data.name}: {column.shape[0]} anomaly scores for {len(data)} rows"
            raise ValueError(msg)
        columns.append(column)
    stacked = np.concatenate(columns)
    if np.isnan(stacked).any():
        msg = "anomaly scores contain NaN"
        raise ValueError(msg)
    return stacked


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ThresholdCurve:
    """The corpus raw score for every distinct threshold, thresholds descending.

    ``thresholds[0]`` is +inf (nothing flagged); at ``thresholds[i]`` every row whose
    score is at least that value is flagged.
    """

    thresholds: np.ndarray
    raw: np.ndarray


def threshold_curve(
    corpus: Corpus, scores_by_file: Mapping[str, np.ndarray], profile: Profile
) -> ThresholdCurve:
    """The raw score of the detector at every threshold it could be given."""
    corpus_rules = _corpus_rules(corpus)
    rules = corpus_rules.rules
    scores = _stack(corpus, scores_by_file)
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    window = rules.window[order]
    reward = rules.reward[order]
    # What flagging each ranked row adds: its FP cost, or the rise of its window's best reward.
    gain = np.where(window < 0, reward * profile.fp_weight, 0.0)
    hits = np.flatnonzero(window >= 0)
    by_window = hits[np.argsort(window[hits], kind="stable")]
    bounds = np.flatnonzero(np.diff(window[by_window])) + 1
    tp_scale = profile.tp_weight / MAX_TP_REWARD
    for rows in np.split(by_window, bounds):
        if rows.size == 0:
            continue
        best = np.maximum.accumulate(reward[rows]) * tp_scale
        # The first flagged row turns a miss (-FN) into a detection.
        gain[rows] = np.diff(best, prepend=-profile.fn_weight)
    base = -profile.fn_weight * float(np.count_nonzero(corpus_rules.scored_windows))
    running = base + np.cumsum(gain)
    last_of_each = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    return ThresholdCurve(
        thresholds=np.concatenate(([np.inf], ranked[last_of_each])),
        raw=np.concatenate(([base], running[last_of_each])),
    )


def optimise_threshold(
    corpus: Corpus, scores_by_file: Mapping[str, np.ndarray], profile: Profile
) -> float:
    """The threshold that maximises the corpus raw score (the highest one among ties, as NAB)."""
    curve = threshold_curve(corpus, scores_by_file, profile)
    return float(curve.thresholds[int(np.argmax(curve.raw))])


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileScore:
    """A detector's NAB result under one profile at one threshold."""

    profile: str
    threshold: float
    raw: float
    detected_windows: int
    missed_windows: int
    false_positives: int
    by_file: Mapping[str, float]


def score_detector(
    corpus: Corpus,
    scores_by_file: Mapping[str, np.ndarray],
    profile: Profile,
    threshold: float | None = None,
) -> ProfileScore:
    """Score a detector under ``profile``; at its optimal threshold unless one is given."""
    if threshold is None:
        threshold = optimise_threshold(corpus, scores_by_file, profile)
    corpus_rules = _corpus_rules(corpus)
    rules = corpus_rules.rules
    flagged = _stack(corpus, scores_by_file) >= threshold
    files = len(corpus.files)

    false_alarm = flagged & (rules.window < 0) & (rules.reward != 0.0)
    fp_cost = np.bincount(
        corpus_rules.file_of_row[false_alarm],
        weights=rules.reward[false_alarm] * profile.fp_weight,
        minlength=files,
    )
    best = np.full(corpus_rules.scored_windows.shape, -np.inf)
    hit = flagged & (rules.window >= 0)
    np.maximum.at(best, rules.window[hit], rules.reward[hit])
    detected = np.isfinite(best)
    window_value = np.where(detected, best * profile.tp_weight / MAX_TP_REWARD, -profile.fn_weight)
    window_value[~corpus_rules.scored_windows] = 0.0
    tp_value = np.bincount(corpus_rules.file_of_window, weights=window_value, minlength=files)
    per_file = fp_cost + tp_value
    return ProfileScore(
        profile=profile.name,
        threshold=threshold,
        raw=float(per_file.sum()),
        detected_windows=int(np.count_nonzero(detected)),
        missed_windows=int(np.count_nonzero(corpus_rules.scored_windows & ~detected)),
        false_positives=int(np.count_nonzero(false_alarm)),
        by_file=dict(zip(corpus.names(), per_file.tolist(), strict=True)),
    )


def null_detector(corpus: Corpus) -> dict[str, np.ndarray]:
    """NAB's null detector: the same anomaly score for every row; its score is the zero."""
    return {data.name: np.full(len(data), NULL_SCORE) for data in corpus.files}


def normalise(raw: float, *, null_raw: float, perfect: float) -> float:
    """NAB's normalised score: 0 for the null detector, 100 for a perfect one.

    >>> normalise(-50.0, null_raw=-100.0, perfect=100.0)
    25.0
    """
    return 100.0 * (raw - null_raw) / (perfect - null_raw)


def normalised_scores(
    corpus: Corpus,
    scores_by_file: Mapping[str, np.ndarray],
    profiles: Sequence[Profile] = PROFILES,
) -> dict[str, float]:
    """The detector's normalised NAB score per profile name, each at its optimal threshold."""
    null = null_detector(corpus)
    results = {}
    for profile in profiles:
        perfect = corpus.window_count * profile.tp_weight
        null_raw = score_detector(corpus, null, profile).raw
        raw = score_detector(corpus, scores_by_file, profile).raw
        results[profile.name] = normalise(raw, null_raw=null_raw, perfect=perfect)
    return results
