"""Whatever a device sends, every reading is either accepted unchanged or refused with a reason."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from civicguard.catalog.loader import demo_catalog
from civicguard.ingest.decode import Decoder
from civicguard.ingest.model import Device, Transport

NOW = 1_790_000_000.0
DECODER = Decoder(demo_catalog())
SUBSTATION = Device(id="sub-1", stream="power.substation", lat=21.88, lon=-102.29)
COUNTER = Device(id="cnt-1", stream="traffic.counter", lat=21.88, lon=-102.29)

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),  # orjson reads larger ones as floats
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(0, 60),
    st.text(max_size=5),
)
value = st.one_of(json_scalar, st.lists(json_scalar, max_size=2))


def readings(fields: list[str]) -> st.SearchStrategy:
    values = st.dictionaries(st.sampled_from([*fields, "extra"]), value, max_size=len(fields) + 1)
    good = st.fixed_dictionaries({f: st.floats(1, 40) for f in fields})
    return st.fixed_dictionaries(
        {
            "seq": st.one_of(st.integers(0, 10**6), json_scalar),
            "ts": st.one_of(st.floats(NOW - 100, NOW + 100), json_scalar),
            "values": st.one_of(good, values, json_scalar),
        },
        optional={
            "device": st.sampled_from(["sub-1", "cnt-1", "x"]),
            "stream": st.text(max_size=3),
        },
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(readings(["voltage", "frequency", "load"]), max_size=12))
def test_substation_readings_are_accepted_or_refused_once(items: list) -> None:
    _check(SUBSTATION, items, ["voltage", "frequency", "load"])


@settings(max_examples=150, deadline=None)
@given(st.lists(readings(["vehicles", "mean_speed"]), max_size=12))
def test_integer_fields_refuse_fractions(items: list) -> None:
    _check(COUNTER, items, ["vehicles", "mean_speed"])


def _check(device: Device, items: list, fields: list[str]) -> None:
    result = DECODER.decode(device, items, transport=Transport.HTTP, received_at=NOW)
    refused = [r.index for r in result.rejections]
    assert len(refused) == len(set(refused))
    accepted = len(result.batches[0]) if result.batches else 0
    assert accepted + len(refused) == len(items)
    if not result.batches:
        return
    batch = result.batches[0]
    kept = [i for i in range(len(items)) if i not in set(refused)]
    assert batch.seq.tolist() == [items[i]["seq"] for i in kept]
    for row, i in enumerate(kept):
        for j, name in enumerate(batch.fields):
            sent = items[i]["values"][name]
            assert not isinstance(sent, bool)
            assert math.isclose(batch.values[row, j], float(sent))
            if name == "vehicles":
                assert float(sent).is_integer()
