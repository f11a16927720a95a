"""One contract, every registered detector: what the pipeline may rely on from each of them."""

from __future__ import annotations

import json
import math

import h3
import numpy as np
import pytest

from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.model import FieldSpec, FieldType
from civicguard.detect.base import Detector
from civicguard.detect.model import Alert, Severity
from civicguard.detect.registry import default_detectors
from civicguard.detect.water import read_scada_csv
from civicguard.ingest.model import ReadingBatch, Reason, Rejection, Transport
from tests.conftest import SHARED_DATA
from tests.services import missing_data

from .explaining import assert_explained
from .traffic import START, CityTraffic

CATALOG = demo_catalog()
NAMES = [d.name for d in default_detectors(CATALOG, lambda _: None)]


@pytest.fixture
def traffic() -> CityTraffic:
    """Five devices of every demo stream."""
    return CityTraffic(CATALOG, per_stream=5)


def build(name: str, traffic: CityTraffic) -> Detector:
    """A fresh detector called ``name`` from the registry."""
    (detector,) = [d for d in default_detectors(CATALOG, traffic.lookup) if d.name == name]
    return detector


def check(detector: Detector, alerts: list[Alert], now: float) -> None:
    """Every alert is well-formed and its evidence is plain JSON."""
    for alert in alerts:
        assert isinstance(alert, Alert)
        assert alert.detector == detector.name
        assert alert.kind and isinstance(alert.kind, str)
        assert isinstance(alert.severity, Severity)
        assert alert.title and isinstance(alert.title, str)
        # An alert about a transport rather than a device (auth failures of strangers) has none.
        assert CATALOG.has_stream(alert.stream) or (alert.stream == "" and alert.device_id is None)
        assert alert.device_id is None or isinstance(alert.device_id, str)
        assert alert.cell == "" or h3.is_valid_cell(alert.cell)
        assert math.isfinite(alert.ts)
        assert alert.created_at == now
        for coordinate in (alert.lat, alert.lon):
            assert coordinate is None or math.isfinite(coordinate)
        json.dumps(alert.evidence, allow_nan=False)
        assert isinstance(alert.evidence.get("readings"), list)
        assert "score" in alert.evidence
        assert_explained(alert.as_dict())


def empty(stream: str) -> ReadingBatch:
    """A batch of the stream with no readings."""
    k = len([f for f in CATALOG.stream(stream).numeric_fields if f.treatment.value != "drop"])
    return ReadingBatch(
        stream=stream,
        fields=tuple(f.name for f in CATALOG.stream(stream).numeric_fields)[:k],
        device_ids=(),
        seq=np.zeros(0, dtype=np.int64),
        ts=np.zeros(0),
        received_at=np.zeros(0),
        values=np.zeros((0, k)),
        text={f.name: [] for f in CATALOG.stream(stream).text_fields},
        cells=(),
        transport=Transport.HTTP,
    )


@pytest.mark.parametrize("name", NAMES)
def test_accepts_empty_batches_and_every_stream(name: str, traffic: CityTraffic) -> None:
    """Empty batches, shuffled devices, NaN optional fields and odd values never break it."""
    detector = build(name, traffic)
    rng = np.random.default_rng(3)
    now = START
    for stream in traffic.devices:
        assert detector.process(empty(stream), now) == []
    for round_ in range(40):
        now = START + round_
        for stream in traffic.devices:
            n = 12
            index = rng.integers(0, 5, n)  # devices repeat and come out of order
            ts = now - rng.uniform(0, 3, n)  # readings out of time order
            batch = traffic.batch(stream, ts, index, np.arange(n) + round_ * n)
            values = batch.values.copy()
            if values.shape[1]:
                flags = [batch.fields.index(f.name) for f in _booleans(stream)]
                values[:, flags] = rng.integers(0, 2, (n, len(flags)))  # rules may hold
                values[rng.random(values.shape) < 0.1] = np.nan  # absent optional fields
                values[rng.random(values.shape) < 0.02] *= 3  # wild but numeric
                if round_ >= 30:
                    values *= 3  # a sustained shift, so that every detector gets to alert
            odd = ReadingBatch(**{**_fields(batch), "values": values})
            check(detector, detector.process(odd, now), now)
        check(detector, detector.tick(now + 30), now + 30)
    for reason in Reason:
        rejection = Rejection(
            reason=reason,
            detail="test",
            transport=Transport.MQTT,
            received_at=now,
            device_id="power-substation-000" if reason is not Reason.BAD_CREDENTIALS else None,
            stream="power.substation",
            seq=3,
            payload=b'{"seq": 3, "ts": 1790000000.0, "values": {"voltage": 11.0}}',
        )
        check(detector, detector.on_rejection(rejection, now), now)
    garbled = Rejection(
        reason=Reason.REPLAYED_SEQUENCE,
        detail="garbled",
        transport=Transport.HTTP,
        received_at=now,
        payload=b"\xff not json",
    )
    check(detector, detector.on_rejection(garbled, now), now)


def _booleans(stream: str) -> list[FieldSpec]:
    return [f for f in CATALOG.stream(stream).numeric_fields if f.type is FieldType.BOOLEAN]


def _fields(batch: ReadingBatch) -> dict[str, object]:
    return {name: getattr(batch, name) for name in ReadingBatch.__dataclass_fields__}


@pytest.mark.parametrize("name", NAMES)
def test_no_alert_on_a_long_run_of_normal_traffic(name: str, traffic: CityTraffic) -> None:
    """Twenty simulated minutes of every stream, normal throughout: not a single alert."""
    detector = build(name, traffic)
    seconds = np.arange(1200, dtype=np.float64)
    alerts: list[Alert] = []
    for chunk in np.array_split(seconds, 240):  # five seconds of readings per batch
        now = START + float(chunk[-1]) + 0.2
        for stream, devices in traffic.devices.items():
            index = np.tile(np.arange(len(devices)), len(chunk))
            ts = START + np.repeat(chunk, len(devices)) + traffic.rng.uniform(0, 0.05, len(index))
            seq = np.repeat(chunk.astype(np.int64), len(devices))
            alerts.extend(detector.process(traffic.batch(stream, ts, index, seq), now))
        alerts.extend(detector.tick(now))
    assert [a.title for a in alerts] == []


@pytest.mark.parametrize("name", NAMES)
def test_no_alert_on_two_normal_days_of_the_hourly_scada_historian(name: str) -> None:
    """The hourly SCADA stream at its own pace, with C-Town's real normal readings (BATADAL
    dataset 03): the 20-minute run above plays one reading a second, which would flood it."""
    source = SHARED_DATA / "batadal" / "BATADAL_dataset03.csv"
    if not source.is_file():
        message = f"the BATADAL data is not at {source.parent} (see shared/data/README.md)"
        missing_data(message)
    table = read_scada_csv(source)
    stream = CATALOG.stream("water.scada")
    spec = stream.numeric_fields
    columns = [table.columns.index(f.name) for f in spec]
    traffic = CityTraffic(CATALOG, per_stream=2, streams=("water.scada",))
    detector = build(name, traffic)
    devices = traffic.devices["water.scada"]
    cell = h3.latlng_to_cell(devices[0].lat, devices[0].lon, stream.h3_resolution)
    hour = stream.report_interval_s
    alerts: list[Alert] = []
    for h in range(48):
        ts = START + h * hour
        rows = table.values[[h, h + 24 * 30]][:, columns]  # two sites: day 1-2 and day 31-32
        batch = ReadingBatch(
            stream="water.scada",
            fields=tuple(f.name for f in spec),
            device_ids=tuple(d.id for d in devices),
            seq=np.array([h + 1, h + 1], dtype=np.int64),
            ts=np.array([ts, ts + 0.5]),
            received_at=np.array([ts + 1.0, ts + 1.5]),
            values=np.ascontiguousarray(rows, dtype=np.float64),
            text={},
            cells=(cell, cell),
            transport=Transport.HTTP,
        )
        now = ts + 2.0
        alerts.extend(detector.process(batch, now))
        for tick in range(1, 4):  # the timer runs between readings too
            alerts.extend(detector.tick(now + tick * hour / 4))
    assert [a.title for a in alerts] == []
