"""The anomaly detector's vector path and its per-device path compute the same thing."""

from __future__ import annotations

import numpy as np
import pytest

from civicguard.catalog.loader import demo_catalog
from civicguard.detect import anomaly
from civicguard.detect.anomaly import StreamingAnomalyDetector
from civicguard.ingest.model import Device, ReadingBatch, Transport


def _batch(rng: np.random.Generator, devices: int, per_device: int) -> ReadingBatch:
    n = devices * per_device
    ids = tuple(f"sub-{i % devices}" for i in range(n))
    ts = 1_790_000_000.0 + np.repeat(np.arange(per_device, dtype=float), devices)
    values = np.column_stack(
        [rng.normal(11.0, 0.05, n), rng.normal(50.0, 0.01, n), rng.normal(12.0, 0.2, n)]
    )
    values[rng.random((n, 3)) < 0.02] = np.nan
    # A manipulated stretch on one device: frequency and voltage far off for a while.
    hit = np.flatnonzero(np.array(ids) == "sub-1")[per_device // 2 : per_device // 2 + 6]
    values[hit, 0] += 1.5
    values[hit, 1] += 1.2
    return ReadingBatch(
        stream="power.substation",
        fields=("voltage", "frequency", "load"),
        device_ids=ids,
        seq=np.arange(n, dtype=np.int64),
        ts=ts,
        received_at=ts + 0.1,
        values=values,
        text={},
        cells=("8a4983a6c6a7fff",) * n,
        transport=Transport.HTTP,
    )


def _device(device_id: str) -> Device:
    return Device(id=device_id, stream="power.substation", lat=21.88, lon=-102.29)


@pytest.mark.parametrize("devices", [1, 3, 12])
def test_vector_and_per_device_paths_agree(monkeypatch, devices: int) -> None:
    batch = _batch(np.random.default_rng(devices), devices, per_device=120)
    results = []
    for width in (0, 10**9):  # 0: always vector steps; huge: always device by device
        monkeypatch.setattr(anomaly, "SCALAR_WIDTH", width)
        detector = StreamingAnomalyDetector(demo_catalog(), _device)
        alerts = detector.process(batch, now=1_790_001_000.0)
        state = detector._states["power.substation"]
        results.append((alerts, state.mean.copy(), state.dev.copy(), state.count.copy()))
    (alerts_v, mean_v, dev_v, count_v), (alerts_s, mean_s, dev_s, count_s) = results
    assert [(a.device_id, a.ts, a.title) for a in alerts_v] == [
        (a.device_id, a.ts, a.title) for a in alerts_s
    ]
    assert [a.evidence for a in alerts_v] == [a.evidence for a in alerts_s]
    assert any(a.device_id == "sub-1" for a in alerts_v) == (devices > 1)
    np.testing.assert_allclose(mean_v, mean_s, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dev_v, dev_s, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(count_v, count_s)
