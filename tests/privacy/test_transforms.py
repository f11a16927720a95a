"""Properties of every privacy transform, checked on generated inputs (hypothesis)."""

from __future__ import annotations

import math

import h3
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, Polygon

from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.model import FieldSpec, FieldType, Treatment
from civicguard.ingest.model import ReadingBatch, Transport
from civicguard.privacy.gateway import (
    PrivacyGateway,
    bucket_times,
    distinct_count,
    generalise,
)
from civicguard.privacy.keys import MemoryKeyStore
from civicguard.privacy.pseudonyms import Pseudonymiser, normalise_identifier

DAY = 86_400.0
PLATE_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
plates = st.text(alphabet=PLATE_CHARS, min_size=4, max_size=8)
times = st.floats(0, 4e9)
KEYS = MemoryKeyStore()
PSEUDONYMISER = Pseudonymiser(KEYS, DAY, {"traffic.anpr": 30 * DAY, "other": DAY})


def ps(plate: str, ts: float, stream: str = "traffic.anpr") -> str:
    return PSEUDONYMISER.pseudonym(stream, "licence_plate", plate, ts, now=ts)


# --- pseudonyms --------------------------------------------------------------------------------


@given(plates, times, st.floats(0, DAY, exclude_max=True))
def test_same_identifier_same_period_same_pseudonym(plate: str, ts: float, offset: float) -> None:
    start = math.floor(ts / DAY) * DAY
    assume(start + offset < start + DAY)  # not rounded up into the next period
    assert ps(plate, start) == ps(plate, start + offset)


@given(plates, times, st.integers(1, 400))
def test_different_periods_give_different_pseudonyms(plate: str, ts: float, later: int) -> None:
    assert ps(plate, ts) != ps(plate, ts + later * DAY)


@given(plates, plates, times)
def test_different_identifiers_give_different_pseudonyms(a: str, b: str, ts: float) -> None:
    assume(a != b)
    assert ps(a, ts) != ps(b, ts)


@given(plates, times)
def test_streams_never_share_pseudonyms(plate: str, ts: float) -> None:
    assert ps(plate, ts) != ps(plate, ts, stream="other")


@settings(max_examples=200)
@given(st.text(min_size=6, max_size=24).filter(lambda s: len(s.strip()) >= 6), times)
def test_a_pseudonym_never_contains_the_raw_value(raw: str, ts: float) -> None:
    out = PSEUDONYMISER.pseudonym("other", None, raw, ts, now=ts)
    assert out.startswith("ps_") and len(out) == 35
    assert raw.strip().lower() not in out.removeprefix("ps_").lower()


@given(
    plates,
    st.lists(st.sampled_from([" ", "-", ".", "·", ""]), min_size=8, max_size=8),
    st.booleans(),
)
def test_plate_spellings_share_one_pseudonym(plate: str, noise: list[str], lower: bool) -> None:
    spelled = "".join(c + sep for c, sep in zip(plate, noise, strict=False))
    spelled = spelled.lower() if lower else spelled
    assert normalise_identifier("licence_plate", spelled) == plate
    assert ps(spelled, 0.0) == ps(plate, 0.0)


# --- generalisation ----------------------------------------------------------------------------

widths = st.one_of(st.integers(1, 1000).map(float), st.sampled_from([0.5, 0.25, 2.5, 0.1, 7.3]))
values = st.floats(-1e6, 1e6, allow_nan=False)


@given(values, widths)
def test_generalised_value_is_the_lower_bound_of_its_range(value: float, width: float) -> None:
    (lower,) = generalise(np.array([value]), width)
    assert lower <= value < lower + width
    assert math.isclose(lower / width, round(lower / width), abs_tol=1e-6)


@given(values, st.integers(1, 1000).map(float))
def test_generalising_twice_changes_nothing(value: float, width: float) -> None:
    once = generalise(np.array([value]), width)
    assert generalise(once, width).tolist() == once.tolist()


@given(st.lists(values, min_size=2, max_size=50), widths)
def test_generalisation_keeps_order_and_absent_values(column: list[float], width: float) -> None:
    column = [*sorted(column), math.nan]
    out = generalise(np.array(column), width)
    assert np.all(np.diff(out[:-1]) >= 0)
    assert math.isnan(out[-1])


@given(times, st.sampled_from([60.0, 300.0, 900.0, 3600.0]))
def test_time_buckets_round_down_within_the_bucket(ts: float, width: float) -> None:
    (bucketed,) = bucket_times(np.array([ts]), width)
    assert bucketed <= ts < bucketed + width
    assert bucketed % width == 0


# --- counts ------------------------------------------------------------------------------------

octets = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(tuple)


@given(st.lists(st.tuples(octets, st.sampled_from([":", "-"]), st.booleans()), max_size=40))
def test_count_is_the_number_of_distinct_addresses(heard: list) -> None:
    spelled = []
    for address, sep, upper in heard:
        text = sep.join(f"{o:02x}" for o in address)
        spelled.append(text.upper() if upper else text)
    assert distinct_count("mac_address", spelled) == len({address for address, _, _ in heard})


# --- through the gateway: location, drop, count -------------------------------------------------

CATALOG = demo_catalog()
GATEWAY = PrivacyGateway(CATALOG, MemoryKeyStore())
SAFETY = CATALOG.stream("citizen.safety_app")
T0 = 1_790_000_000.0


def safety_batch(points: list[tuple[float, float]], accuracy: float) -> ReadingBatch:
    """A citizen.safety_app batch as the decoder makes it (numeric: lat, lon, accuracy)."""
    n = len(points)
    names = tuple(f.name for f in SAFETY.numeric_fields)
    columns = {"lat": [p[0] for p in points], "lon": [p[1] for p in points]}
    columns["accuracy"] = [accuracy] * n
    return ReadingBatch(
        stream=SAFETY.name,
        fields=names,
        device_ids=("app-1",) * n,
        seq=np.arange(1, n + 1, dtype=np.int64),
        ts=T0 + np.arange(n, dtype=np.float64) * 97.0,
        received_at=np.full(n, T0 + n * 97.0),
        values=np.array([columns[name] for name in names], dtype=np.float64).T.reshape(n, -1),
        text={"citizen": [f"citizen-{i % 3}" for i in range(n)]},
        cells=("",) * n,
        transport=Transport.HTTP,
    )


def contains(cell: str, lat: float, lon: float) -> bool:
    ring = Polygon([(lo, la) for la, lo in h3.cell_to_boundary(cell)])
    return ring.buffer(1e-9).contains(Point(lon, lat))


@settings(max_examples=60)
@given(
    st.lists(st.tuples(st.floats(-60, 60), st.floats(-170, 170)), min_size=1, max_size=20),
    st.floats(0, 1000),
)
def test_location_becomes_a_cell_holding_the_point_and_leaves(points, accuracy) -> None:
    batch = safety_batch(points, accuracy)
    out = GATEWAY.protect(batch, "device-cell")
    for cell, (lat, lon) in zip(out.cells, points, strict=True):
        assert h3.get_resolution(cell) == SAFETY.h3_resolution
        assert contains(cell, lat, lon)
    # The coordinates and the dropped accuracy are gone; the citizen is a pseudonym.
    assert out.fields == ()
    assert set(out.text) == {"citizen"}
    assert all(p.startswith("ps_") for p in out.text["citizen"])
    assert SAFETY.time_bucket_s is not None
    assert np.all(out.ts % SAFETY.time_bucket_s == 0)
    assert np.all((batch.ts - out.ts >= 0) & (batch.ts - out.ts < SAFETY.time_bucket_s))


def test_a_reading_without_its_location_keeps_the_device_cell() -> None:
    batch = safety_batch([(21.88, -102.29), (21.88, -102.29)], 5.0)
    batch.values[1, SAFETY.numeric_fields.index(SAFETY.field("lat"))] = np.nan
    out = GATEWAY.protect(batch, "device-cell")
    assert out.cells[1] == "device-cell"
    assert out.cells[0] != "device-cell"


@pytest.mark.parametrize("stream", [s.name for s in CATALOG.streams])
def test_dropped_fields_never_leave_the_gateway(stream: str) -> None:
    spec = CATALOG.stream(stream)
    numeric = spec.numeric_fields
    n = 3
    batch = ReadingBatch(
        stream=stream,
        fields=tuple(f.name for f in numeric),
        device_ids=("d",) * n,
        seq=np.arange(n, dtype=np.int64),
        ts=np.full(n, T0),
        received_at=np.full(n, T0),
        values=np.ones((n, len(numeric))),
        text={f.name: [_text_value(f)] * n for f in spec.text_fields},
        cells=("",) * n,
        transport=Transport.HTTP,
    )
    out = GATEWAY.protect(batch, "cell")
    names = set(out.fields) | set(out.text)
    for f in spec.fields:
        gone = f.treatment is Treatment.DROP or f.name in (spec.location or ())
        assert (f.name not in names) is gone, f.name


def _text_value(spec: FieldSpec) -> object:
    if spec.type is FieldType.STRING_LIST:
        return ["02:00:00:00:00:01", "02:00:00:00:00:02"]
    return spec.choices[0] if spec.choices else "AGS1234"


def test_a_value_on_a_bound_that_binary_floating_point_rounds_both_ways() -> None:
    # 6 * 0.1 is 0.6000000000000001 but 0.5 + 0.1 is 0.6: found by hypothesis above.
    (lower,) = generalise(np.array([0.6]), 0.1)
    assert lower <= 0.6 < lower + 0.1
