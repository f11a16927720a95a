"""NAB's window, sigmoid and cost rules on tiny hand-made series, and the corpus readers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from civicguard.benchmarks import nab
from civicguard.benchmarks.nab import (
    MAX_TP_REWARD,
    REWARD_LOW_FN_RATE,
    REWARD_LOW_FP_RATE,
    STANDARD,
    Corpus,
    DataFile,
    file_rules,
    load_corpus,
    load_results,
    normalised_scores,
    optimise_threshold,
    probationary_rows,
    scaled_sigmoid,
    score_detector,
    threshold_curve,
)

ROWS = 1000  # probation: 150 rows
WINDOW = (500, 599)  # 100 rows wide


def _series(name: str, rows: int, windows: tuple[tuple[int, int], ...]) -> DataFile:
    return DataFile(
        name=name,
        timestamps=1.4e9 + 300.0 * np.arange(rows),
        values=np.zeros(rows),
        windows=windows,
    )


def _one_window() -> Corpus:
    return Corpus(files=(_series("city/one.csv", ROWS, (WINDOW,)),))


def _flags(*rows: int, size: int = ROWS) -> dict[str, np.ndarray]:
    scores = np.zeros(size)
    scores[list(rows)] = 1.0
    return {"city/one.csv": scores}


def _raw(corpus: Corpus, flags: dict[str, np.ndarray], profile: nab.Profile = STANDARD) -> float:
    return score_detector(corpus, flags, profile, threshold=0.5).raw


def test_scaled_sigmoid_rewards_early_and_saturates_far_after() -> None:
    curve = scaled_sigmoid(np.linspace(-1.0, 5.0, 61))
    assert curve[0] == pytest.approx(0.98661, abs=1e-5)
    assert float(scaled_sigmoid(0.0)) == 0.0
    assert np.all(np.diff(curve) <= 0)
    assert np.all(curve[np.linspace(-1.0, 5.0, 61) > 3.0] == -1.0)


def test_probationary_period_is_15_percent_capped_at_750_rows() -> None:
    assert probationary_rows(1000) == 150
    assert probationary_rows(4000) == 600
    assert probationary_rows(5000) == 750
    assert probationary_rows(22695) == 750
    assert probationary_rows(7) == 1


def test_detection_at_window_start_earns_the_full_tp_weight() -> None:
    assert _raw(_one_window(), _flags(WINDOW[0])) == pytest.approx(1.0)


def test_detection_at_window_end_earns_almost_nothing() -> None:
    raw = _raw(_one_window(), _flags(WINDOW[1]))
    assert 0.0 < raw < 0.03
    assert raw == pytest.approx(float(scaled_sigmoid(-1 / 100)) / MAX_TP_REWARD)


def test_earlier_detection_in_a_window_earns_more() -> None:
    rewards = [_raw(_one_window(), _flags(row)) for row in range(WINDOW[0], WINDOW[1] + 1)]
    assert np.all(np.diff(rewards) < 0)


def test_only_the_first_detection_in_a_window_counts() -> None:
    first = _raw(_one_window(), _flags(520))
    assert _raw(_one_window(), _flags(520, 530, 598)) == pytest.approx(first)
    summary = score_detector(_one_window(), _flags(520, 530, 598), STANDARD, threshold=0.5)
    assert (summary.detected_windows, summary.missed_windows, summary.false_positives) == (1, 0, 0)


def test_missed_window_costs_the_fn_weight_of_the_profile() -> None:
    nothing = _flags()
    assert _raw(_one_window(), nothing, STANDARD) == -1.0
    assert _raw(_one_window(), nothing, REWARD_LOW_FN_RATE) == -2.0
    summary = score_detector(_one_window(), nothing, STANDARD, threshold=0.5)
    assert (summary.detected_windows, summary.missed_windows) == (0, 1)


def test_false_positive_costs_grow_with_distance_after_the_window() -> None:
    missed = -1.0
    just_after = _raw(_one_window(), _flags(WINDOW[1] + 1)) - missed
    later = _raw(_one_window(), _flags(WINDOW[1] + 100)) - missed
    far = _raw(_one_window(), _flags(WINDOW[1] + 400)) - missed
    assert -0.11 < later < just_after < 0.0
    assert just_after == pytest.approx(0.11 * float(scaled_sigmoid(1 / 99)))
    assert far == pytest.approx(-0.11)
    low_fp = _raw(_one_window(), _flags(WINDOW[1] + 400), REWARD_LOW_FP_RATE) - missed
    assert low_fp == pytest.approx(-0.22)


def test_false_positive_before_any_window_costs_the_full_fp_weight() -> None:
    assert _raw(_one_window(), _flags(300)) == pytest.approx(-1.0 - 0.11)
    assert score_detector(_one_window(), _flags(300), STANDARD, threshold=0.5).false_positives == 1


def test_probationary_rows_are_not_scored() -> None:
    assert _raw(_one_window(), _flags(*range(150))) == -1.0
    assert _raw(_one_window(), _flags(150)) == pytest.approx(-1.11)


def test_window_inside_the_probationary_period_is_neither_earned_nor_missed() -> None:
    corpus = Corpus(files=(_series("city/one.csv", ROWS, ((10, 20), WINDOW)),))
    assert _raw(corpus, _flags()) == -1.0
    # The early window still sets the distance of later false positives.
    rules = file_rules(corpus.files[0])
    assert rules.reward[200] == pytest.approx(-1.0)
    assert rules.reward[160] == pytest.approx(float(scaled_sigmoid((160 - 20) / 10)))


def _random_corpus(rng: np.random.Generator) -> tuple[Corpus, dict[str, np.ndarray]]:
    files = (
        _series("a/one.csv", 400, ((100, 139), (300, 339))),
        _series("a/two.csv", 300, ()),
        _series("b/three.csv", 500, ((30, 60), (250, 299))),
    )
    # Coarse scores make many ties, which the threshold sweep must group.
    scores = {f.name: rng.integers(0, 40, len(f)) / 40.0 for f in files}
    return Corpus(files=files), scores


@pytest.mark.parametrize("seed", range(5))
def test_threshold_curve_matches_scoring_at_each_threshold(seed: int) -> None:
    corpus, scores = _random_corpus(np.random.default_rng(seed))
    for profile in nab.PROFILES:
        curve = threshold_curve(corpus, scores, profile)
        assert curve.thresholds[0] == np.inf
        assert np.all(np.diff(curve.thresholds) < 0)
        for threshold, raw in zip(curve.thresholds, curve.raw, strict=True):
            direct = score_detector(corpus, scores, profile, threshold=float(threshold))
            assert direct.raw == pytest.approx(raw, abs=1e-9)
            assert sum(direct.by_file.values()) == pytest.approx(raw, abs=1e-9)
        best = optimise_threshold(corpus, scores, profile)
        assert score_detector(corpus, scores, profile).raw == pytest.approx(curve.raw.max())
        assert best == curve.thresholds[int(np.argmax(curve.raw))]


def test_null_detector_scores_0_and_perfect_detector_100() -> None:
    corpus, _ = _random_corpus(np.random.default_rng(0))
    perfect = {}
    for data in corpus.files:
        column = np.zeros(len(data))
        column[[start for start, _ in data.windows if start >= data.probation]] = 1.0
        perfect[data.name] = column
    # One window lies in b/three.csv's probation (75 rows): a perfect detector cannot earn it.
    assert normalised_scores(corpus, nab.null_detector(corpus)) == {
        p.name: pytest.approx(0.0) for p in nab.PROFILES
    }
    scores = normalised_scores(corpus, perfect)
    null_raw = -3.0
    assert scores["standard"] == pytest.approx(100 * (3.0 - null_raw) / (4.0 - null_raw))


def test_scores_are_checked_against_the_corpus() -> None:
    corpus = _one_window()
    with pytest.raises(KeyError, match=r"city/one\.csv"):
        score_detector(corpus, {}, STANDARD)
    with pytest.raises(ValueError, match="999 anomaly scores"):
        score_detector(corpus, {"city/one.csv": np.zeros(999)}, STANDARD)
    with pytest.raises(ValueError, match="NaN"):
        score_detector(corpus, {"city/one.csv": np.full(ROWS, np.nan)}, STANDARD)


def _write_nab(root: Path, windows: dict[str, list[list[str]]], rows: dict[str, list[str]]) -> None:
    for name, stamps in rows.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["timestamp,value", *(f"{s},{i}" for i, s in enumerate(stamps))]
        path.write_text("\n".join(lines) + "\n")
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def test_load_corpus_maps_window_edges_to_rows_first_occurrence_first(tmp_path: Path) -> None:
    # A repeated hour, as at a DST change in the AWS series.
    stamps = [f"2014-03-09 0{h}:00:00" for h in (0, 1, 2, 3, 3, 3, 4, 5)]
    _write_nab(
        tmp_path,
        {"cat/s.csv": [["2014-03-09 03:00:00.000000", "2014-03-09 04:00:00.000000"]]},
        {"cat/s.csv": stamps},
    )
    corpus = load_corpus(tmp_path)
    (data,) = corpus.files
    assert data.name == "cat/s.csv"
    assert data.windows == ((3, 6),)
    assert data.values.tolist() == list(range(8))
    assert data.timestamps[0] == 1394323200.0  # 2014-03-09T00:00:00Z
    assert corpus.window_count == 1


def test_load_corpus_refuses_window_edges_between_rows(tmp_path: Path) -> None:
    stamps = ["2014-03-09 00:00:00", "2014-03-09 01:00:00"]
    window = [["2014-03-09 00:30:00.000000", "2014-03-09 01:00:00.000000"]]
    _write_nab(tmp_path, {"cat/s.csv": window}, {"cat/s.csv": stamps})
    with pytest.raises(ValueError, match=r"cat/s\.csv: window edge"):
        load_corpus(tmp_path)


def test_load_results_reads_anomaly_scores_from_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "mine.tar.gz"
    members = {
        "mine/cat/mine_s.csv": "timestamp,value,anomaly_score,label\nt0,1,0.25,0\nt1,2,0.75,1\n",
        "mine/mine_standard_scores.csv": "Detector,Score\nmine,1.0\n",
    }
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in members.items():
            body = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    results = load_results(archive)
    assert list(results) == ["cat/s.csv"]
    assert results["cat/s.csv"].tolist() == [0.25, 0.75]


def test_public_api_is_complete() -> None:
    public = {name for name in dir(nab) if not name.startswith("_")}
    assert public == set(nab.__all__)
