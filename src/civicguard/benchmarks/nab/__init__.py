"""The Numenta Anomaly Benchmark (NAB) scorer, written from NAB's published rules.

Load the corpus and a detector's anomaly scores, then score them per profile::

    corpus = load_corpus(Path("shared/data/nab"))
    scores = load_results(Path("shared/data/nab/baseline_results/numenta.tar.gz"))
    normalised_scores(corpus, scores)  # {"standard": 70.1, ...}
"""

from civicguard.benchmarks.nab._corpus import (
    Corpus,
    DataFile,
    load_corpus,
    load_results,
    probationary_rows,
)
from civicguard.benchmarks.nab._profiles import (
    PROFILES,
    REWARD_LOW_FN_RATE,
    REWARD_LOW_FP_RATE,
    STANDARD,
    Profile,
    load_profiles,
)
from civicguard.benchmarks.nab._scoring import (
    MAX_TP_REWARD,
    NULL_SCORE,
    ProfileScore,
    RowRules,
    ThresholdCurve,
    file_rules,
    normalise,
    normalised_scores,
    null_detector,
    optimise_threshold,
    scaled_sigmoid,
    score_detector,
    threshold_curve,
)

__all__ = [
    "MAX_TP_REWARD",
    "NULL_SCORE",
    "PROFILES",
    "REWARD_LOW_FN_RATE",
    "REWARD_LOW_FP_RATE",
    "STANDARD",
    "Corpus",
    "DataFile",
    "Profile",
    "ProfileScore",
    "RowRules",
    "ThresholdCurve",
    "file_rules",
    "load_corpus",
    "load_profiles",
    "load_results",
    "normalise",
    "normalised_scores",
    "null_detector",
    "optimise_threshold",
    "probationary_rows",
    "scaled_sigmoid",
    "score_detector",
    "threshold_curve",
]
