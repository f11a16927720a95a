"""The water attack detector in the pipeline: SCADA rows through ingest, alerts in the store.

dataset04's last five weeks (attacks 5, 6 and 7) are replayed a day at a time through the
real ingest path of an embedded platform built with a saved model, shifted by whole days to
the platform's clock (the hour of day, which the physics uses, is kept). The alerts stored
must fall in the labelled attack windows, name the attacked components, and be as many as
the episodes a ``LiveWaterWatch`` finds on the same rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from civicguard.benchmarks.batadal import DATASET04_ATTACKS
from civicguard.catalog.loader import demo_catalog
from civicguard.clock import ManualClock
from civicguard.detect.registry import default_detectors
from civicguard.detect.water.detector import LiveWaterWatch, WaterAttackModel
from civicguard.detect.water.scada import ScadaTable, parse_time
from civicguard.detect.water_live import SCADA_STREAM, WaterAttackDetector
from civicguard.ingest.model import Device, ReadingBatch, Transport
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.settings import Settings
from tests.detect.explaining import assert_explained

#: The replayed span: attacks 5-7 of dataset04 and the quiet days around them.
SPAN = ("15/11/16 00", "22/12/16 00")
#: The components each replayed attack acts on or conceals (shared/data/README.md).
ATTACKED = {
    4: {"PU7", "T4"},
    5: {"PU7", "T4"},
    6: {"PU7", "T4", "T1", "PU1", "PU2"},
}
DAY = 86_400.0
CLOCK_START = 1_790_000_000.0


def span(table: ScadaTable) -> tuple[np.ndarray, np.ndarray]:
    """(ts, values) of the replayed rows."""
    inside = (table.ts >= parse_time(SPAN[0])) & (table.ts < parse_time(SPAN[1]))
    return table.ts[inside], table.values[inside]


def episodes_of_the_watch(model: WaterAttackModel, ts: np.ndarray, values: np.ndarray) -> int:
    """How many attack episodes a watch run directly on the rows opens."""
    watch, opened, before = LiveWaterWatch(model), 0, False
    for t, row in zip(ts, values, strict=True):
        verdict = watch.push(float(t), dict(zip(model.columns, row, strict=True)))
        opened += verdict.under_attack and not before
        before = verdict.under_attack
    return opened


def window_of(ts: float) -> int | None:
    """Index of the dataset04 attack window holding ``ts``, if any."""
    for k, (first, last) in enumerate(DATASET04_ATTACKS):
        if parse_time(first) <= ts <= parse_time(last):
            return k
    return None


def wire_values(columns: tuple[str, ...], row: np.ndarray) -> dict[str, Any]:
    """One row as a device sends it: statuses as booleans, the rest as numbers."""
    return {
        c: bool(v > 0.5) if c.startswith("S_") else float(v)
        for c, v in zip(columns, row, strict=True)
    }


def test_alerts_land_in_the_store_during_attacks_naming_the_attacked_devices(
    model_file: Path, model: WaterAttackModel, attacked: ScadaTable, tmp_path: Path
) -> None:
    ts, values = span(attacked)
    shift = np.floor((CLOCK_START - ts[0]) / DAY) * DAY  # whole days keep the hour of day
    clock = ManualClock(float(ts[0] + shift))
    settings = Settings(data_dir=tmp_path / "data", water_model=str(model_file))
    platform = Platform.build(settings, clock=clock, keys=MemoryKeyStore())
    try:
        assert "water_attack" in [d.name for d in platform.processor.detectors]
        historian = Device(
            id="scada-ctown", stream=SCADA_STREAM, lat=21.8818, lon=-102.2960, district="Centro"
        )
        platform.registry.provision(historian, clock.now())
        for start in range(0, len(ts), 24):
            day = range(start, min(start + 24, len(ts)))
            clock.set(float(ts[day[-1]] + shift) + 60.0)
            body = orjson.dumps(
                [
                    {
                        "seq": i + 1,
                        "ts": float(ts[i] + shift),
                        "values": wire_values(attacked.columns, values[i]),
                    }
                    for i in day
                ]
            )
            result = platform.ingest.submit(historian, body, Transport.HTTP)
            assert result.accepted == len(day), result.rejections
            while platform.processor.run_once(timeout=0.0):
                pass
        stored = [
            a
            for a in platform.store.alerts.query(stream=SCADA_STREAM, limit=10_000)
            if a.detector == "water_attack"
        ]
    finally:
        platform.close()

    assert len(stored) == episodes_of_the_watch(model, ts, values)
    by_window: dict[int | None, list[Any]] = {}
    for a in stored:
        by_window.setdefault(window_of(a.ts - shift), []).append(a)
        assert a.severity.value == "high" and a.device_id == "scada-ctown"
        assert_explained(a.as_dict())
    for k, devices in ATTACKED.items():
        (caught,) = by_window[k]  # one alert per attack, however long it lasts
        named = set(caught.evidence["implicated_devices"])
        assert named & devices, f"attack {k + 1}: named {named}, attacked {devices}"
        assert any(d in caught.title for d in named & devices)
    # Outside the windows: at most one false episode in these five weeks.
    assert len(by_window.get(None, [])) <= 1


def _batch(columns: tuple[str, ...], ts: np.ndarray, rows: np.ndarray, ids: list[str]) -> Any:
    return ReadingBatch(
        stream=SCADA_STREAM,
        fields=columns,
        device_ids=tuple(ids),
        seq=np.arange(len(ts), dtype=np.int64),
        ts=ts.astype(np.float64),
        received_at=ts.astype(np.float64),
        values=rows.astype(np.float64),
        text={},
        cells=tuple("" for _ in ids),
        transport=Transport.SIMULATOR,
    )


def test_two_historians_shuffled_in_one_batch_are_judged_apart(
    model: WaterAttackModel, attacked: ScadaTable
) -> None:
    ts, values = span(attacked)
    ts, values = ts[:300], values[:300]  # up to the end of attack 5
    detector = WaterAttackDetector(demo_catalog(), lambda _: None, model, keep_verdicts=True)
    order = np.random.default_rng(2).permutation(2 * len(ts))
    both_ts = np.concatenate([ts, ts])[order]
    both = np.vstack([values, values])[order]
    ids = ["a"] * len(ts) + ["b"] * len(ts)
    ids = [ids[i] for i in order]
    reversed_columns = attacked.columns[::-1]  # fields need not come in the model's order
    alerts = detector.process(_batch(reversed_columns, both_ts, both[:, ::-1], ids), 0.0)
    watch = LiveWaterWatch(model)
    expected = [
        watch.push(float(t), dict(zip(model.columns, row, strict=True)))
        for t, row in zip(ts, values, strict=True)
    ]
    assert detector.verdicts("a") == expected == detector.verdicts("b")
    assert sorted(a.device_id for a in alerts) == ["a", "b"]
    # A row no newer than the last one judged is skipped, not judged twice.
    assert detector.process(_batch(attacked.columns, ts[-2:], values[-2:], ["a", "a"]), 0.0) == []
    assert len(detector.verdicts("a")) == len(ts)


def test_registered_only_with_a_model(model: WaterAttackModel) -> None:
    catalog = demo_catalog()
    assert "water_attack" not in [d.name for d in default_detectors(catalog, lambda _: None)]
    names = [d.name for d in default_detectors(catalog, lambda _: None, model)]
    assert names[-1] == "water_attack" and len(set(names)) == len(names)


@pytest.mark.parametrize("missing", ["L_T1", "S_PU7"])
def test_a_stream_without_the_models_tags_is_left_alone(
    model: WaterAttackModel, attacked: ScadaTable, missing: str
) -> None:
    keep = [j for j, c in enumerate(attacked.columns) if c != missing]
    columns = tuple(attacked.columns[j] for j in keep)
    detector = WaterAttackDetector(demo_catalog(), lambda _: None, model, keep_verdicts=True)
    ts, values = span(attacked)
    assert detector.process(_batch(columns, ts[:5], values[:5, keep], ["a"] * 5), 0.0) == []
    assert detector.verdicts("a") == []
