"""Benchmark: the resonance laid over the live pattern detector, its cost and its false alerts.

Two measurements, each with the resonance (``shape_threshold`` as configured) and without it:

* ``cpu``: streams reporting once a second, a slow daily-like wave with noise, fed in
  ten-second batches; CPU time per reading before and after the resonance starts judging
  (a stream's first 208 windows, 35 minutes, are its warm-up).
* ``city``: the simulated city's normal traffic (no scenarios) for ``--hours``, every stream
  the pattern detector watches, in five-second batches: the alerts it raises (all false),
  and how many windows the resonance found new in shape before the level test.

    .venv/bin/python bench/pattern_shape.py cpu [--streams 500] [--seconds 5000]
    .venv/bin/python bench/pattern_shape.py city [--hours 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

import numpy as np

from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.model import FieldSpec, FieldType
from civicguard.detect.univariate_live import (
    PatternAnomalyDetector,
    PatternSettings,
    WindowedEnsemble,
    WindowVerdicts,
)
from civicguard.ingest.model import ReadingBatch, Transport
from civicguard.respond.streets import city_streets
from civicguard.sim.city import SimulatedCity

START = 1_790_000_000.0
#: Settings with the resonance, as configured, and without it.
VARIANTS = {
    "with resonance": PatternSettings(),
    "ensemble alone": PatternSettings(shape_threshold=None),
}


def cpu(streams: int, seconds: int) -> None:
    """CPU per reading of scoring steady streams, before and after the resonance judges."""
    for name, settings in VARIANTS.items():
        rng = np.random.default_rng(1)
        phase = rng.uniform(0.0, 2 * np.pi, streams)
        windows = WindowedEnsemble(settings)
        slots = np.tile(np.arange(streams), 10)
        half = seconds // 20 * 10
        spent = [0.0, 0.0]
        for start in range(0, seconds, 10):
            ts = np.repeat(np.arange(start, start + 10, dtype=np.float64), streams)
            values = 10.0 + 3.0 * np.sin(ts / 600.0 + phase[slots]) + rng.normal(0, 0.3, ts.size)
            began = time.process_time()
            windows.add(slots, ts, values)
            windows.score()
            spent[start >= half] += time.process_time() - began
        per = [s / (streams * n) * 1e6 for s, n in zip(spent, (half, seconds - half), strict=True)]
        print(
            f"{name}: {per[0]:.2f} us a reading in the first {half} s, "
            f"{per[1]:.2f} us after ({streams} streams, one reading a second)"
        )


def city(hours: float, seed: int) -> None:
    """Alerts on the simulated city's normal traffic, with and without the resonance."""
    catalog = demo_catalog()
    streets = city_streets()
    for name, settings in VARIANTS.items():
        town = SimulatedCity(seed=seed, streets=streets, catalog=catalog)
        by_id = {d.id: d for d in town.devices}
        detector = PatternAnomalyDetector(catalog, by_id.get, settings)
        judged: list[WindowVerdicts] = []
        for state in detector._states.values():
            score = state.windows.score

            def kept(score=score, judged=judged) -> WindowVerdicts:  # type: ignore[no-untyped-def]
                verdicts = score()
                judged.append(verdicts)
                return verdicts

            state.windows.score = kept  # type: ignore[method-assign]
        specs = {
            stream: [
                f for f in catalog.stream(stream).numeric_fields if f.type is not FieldType.BOOLEAN
            ]
            for stream in detector._states
        }
        waiting: dict[str, list[tuple[str, float, dict[str, Any]]]] = {s: [] for s in specs}
        alerts = []
        began = time.perf_counter()
        for second in range(int(hours * 3600)):
            now = START + second
            for device_id, values in town.readings(now).items():
                stream = by_id[device_id].stream
                if stream in waiting:
                    waiting[stream].append((device_id, now, values))
            if second % 5 != 4:
                continue
            for stream, rows in waiting.items():
                if rows:
                    alerts += detector.process(_batch(stream, specs[stream], rows, now), now + 0.1)
                    rows.clear()
            alerts += detector.tick(now + 0.1)
        elapsed = time.perf_counter() - began
        windows = sum(len(v) for v in judged)
        shapes = sum(int((v.shape > 0).sum()) for v in judged)
        over = sum(
            int(((v.shape > 0) & (v.laid >= (settings.shape_threshold or np.inf))).sum())
            for v in judged
        )
        kinds = Counter("shape" if a.evidence["shape"]["alarm"] else "ensemble" for a in alerts)
        print(
            f"{name}: {hours:g} h of seed {seed}, {len(by_id)} devices, {windows:,} windows; "
            f"{len(alerts)} alerts {dict(kinds)}; new shapes {shapes:,}, "
            f"{over:,} over the threshold before the level test; {hours * 3600 / elapsed:.0f} "
            "simulated s a second"
        )


def _batch(
    stream: str, specs: list[FieldSpec], rows: list[tuple[str, float, dict[str, Any]]], now: float
) -> ReadingBatch:
    """Five seconds of a stream's readings as the privacy gateway hands them over."""
    values = np.array(
        [[np.nan if v.get(f.name) is None else float(v[f.name]) for f in specs] for *_, v in rows]
    )
    return ReadingBatch(
        stream=stream,
        fields=tuple(f.name for f in specs),
        device_ids=tuple(d for d, *_ in rows),
        seq=np.arange(len(rows), dtype=np.int64),
        ts=np.array([t for _, t, _ in rows]),
        received_at=np.full(len(rows), now + 0.05),
        values=values.reshape(len(rows), len(specs)),
        text={},
        cells=("",) * len(rows),
        transport=Transport.SIMULATOR,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("cpu")
    one.add_argument("--streams", type=int, default=500)
    one.add_argument("--seconds", type=int, default=5000)
    two = sub.add_parser("city")
    two.add_argument("--hours", type=float, default=2.0)
    two.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.what == "cpu":
        cpu(args.streams, args.seconds)
    else:
        city(args.hours, args.seed)


if __name__ == "__main__":
    main()
