"""Print the NAB scores of the published baseline outputs next to NAB's scoreboard.

Usage: ``.venv/bin/python bench/nab_scoreboard.py [path/to/nab]`` (default: ../shared/data/nab).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from civicguard.benchmarks.nab import (
    PROFILES,
    load_corpus,
    load_results,
    normalised_scores,
    score_detector,
)

DEFAULT_NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"

#: NAB's published scoreboard (standard, reward_low_FP_rate, reward_low_FN_rate).
PUBLISHED = {
    "numenta": (70.1, 63.1, 74.3),
    "windowedGaussian": (39.6, 20.9, 47.4),
    "null": (0.0, 0.0, 0.0),
}


def main(nab_dir: Path) -> None:
    """Score every baseline archive and print ours beside the published figures."""
    started = time.perf_counter()
    corpus = load_corpus(nab_dir)
    loaded = time.perf_counter()
    rows = sum(len(f) for f in corpus.files)
    print(
        f"corpus: {len(corpus.files)} files, {rows} rows, {corpus.window_count} windows, "
        f"read in {loaded - started:.2f} s"
    )
    header = "  ".join(f"{p.name:>22}" for p in PROFILES)
    print(f"{'detector':<18}{header}   read s  score s")
    for detector, published in PUBLISHED.items():
        t0 = time.perf_counter()
        results = load_results(nab_dir / "baseline_results" / f"{detector}.tar.gz")
        t1 = time.perf_counter()
        ours = normalised_scores(corpus, results)
        t2 = time.perf_counter()
        cells = "  ".join(
            f"{ours[p.name]:>10.2f} (pub {value:5.1f})"
            for p, value in zip(PROFILES, published, strict=True)
        )
        print(f"{detector:<18}{cells}   {t1 - t0:6.2f}  {t2 - t1:7.2f}")
        for profile in PROFILES:
            s = score_detector(corpus, results, profile)
            print(
                f"{'':<18}{profile.name}: threshold {s.threshold:.6g}, raw {s.raw:.3f}, "
                f"windows {s.detected_windows} found / {s.missed_windows} missed, "
                f"{s.false_positives} false positives"
            )
    print(f"total: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_NAB)
