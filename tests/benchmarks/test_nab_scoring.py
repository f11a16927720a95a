"""The scorer reproduces NAB's published scores of the baseline detectors' outputs."""

from __future__ import annotations

import csv
import io
import tarfile

import numpy as np
import pytest

from civicguard.benchmarks.nab import (
    MAX_TP_REWARD,
    PROFILES,
    Corpus,
    file_rules,
    load_corpus,
    load_profiles,
    load_results,
    normalised_scores,
    null_detector,
)
from tests.conftest import SHARED_DATA
from tests.services import missing_data

NAB = SHARED_DATA / "nab"
BASELINES = NAB / "baseline_results"

#: NAB's scoreboard (standard, reward_low_FP_rate, reward_low_FN_rate).
PUBLISHED = {
    "numenta": (70.1, 63.1, 74.3),
    "windowedGaussian": (39.6, 20.9, 47.4),
    "null": (0.0, 0.0, 0.0),
}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """The NAB corpus from the shared data folder."""
    if not (NAB / "labels" / "combined_windows.json").is_file():
        message = f"the NAB corpus is not at {NAB} (see shared/data/README.md)"
        missing_data(message)
    return load_corpus(NAB)


def test_corpus_has_58_files_116_windows(corpus: Corpus) -> None:
    assert len(corpus.files) == 58
    assert corpus.window_count == 116
    assert sum(len(f) for f in corpus.files) == 365_558


def test_profiles_match_the_published_profiles_file() -> None:
    if not (NAB / "profiles.json").is_file():
        missing_data(f"the NAB profiles.json is not at {NAB} (see shared/data/README.md)")
    assert sorted(load_profiles(NAB / "profiles.json"), key=str) == sorted(PROFILES, key=str)


@pytest.mark.parametrize("detector", sorted(PUBLISHED))
def test_baseline_scores_reproduce_the_published_scoreboard(corpus: Corpus, detector: str) -> None:
    results = load_results(BASELINES / f"{detector}.tar.gz")
    scores = normalised_scores(corpus, results)
    expected = dict(zip((p.name for p in PROFILES), PUBLISHED[detector], strict=True))
    assert scores == {name: pytest.approx(value, abs=0.2) for name, value in expected.items()}


def test_published_null_outputs_are_our_null_detector(corpus: Corpus) -> None:
    published = load_results(BASELINES / "null.tar.gz")
    ours = null_detector(corpus)
    assert published.keys() == ours.keys()
    for name, column in ours.items():
        np.testing.assert_array_equal(published[name], column)


def test_row_rewards_equal_the_published_per_row_scores(corpus: Corpus) -> None:
    """NAB wrote each row's weighted reward as S(t)_<profile>; ours must agree on scored rows."""
    files = {f.name: f for f in corpus.files}
    compared = 0
    with tarfile.open(BASELINES / "numenta.tar.gz", mode="r:gz") as tar:
        for member in tar:
            if not member.name.endswith(".csv") or member.name.count("/") != 2:
                continue
            category, filename = member.name.split("/")[1:]
            data = files[f"{category}/{filename.removeprefix('numenta_')}"]
            handle = tar.extractfile(member)
            assert handle is not None
            rows = list(csv.DictReader(io.StringIO(handle.read().decode())))
            rules = file_rules(data)
            scored = slice(data.probation, None)
            for profile in PROFILES:
                published = np.array([float(r[f"S(t)_{profile.name}"]) for r in rows])
                ours = np.where(
                    rules.window >= 0,
                    rules.reward * profile.tp_weight / MAX_TP_REWARD,
                    rules.reward * profile.fp_weight,
                )
                np.testing.assert_allclose(ours[scored], published[scored], atol=1e-9)
            compared += 1
    assert compared == 58
