"""Refusals name the field and the rule, never the value; odd bodies get a reason, not a crash.

Every field of every catalog stream and every envelope key gets an identifier in turn (as a
string, inside a list, as a key name); whatever the decoder refuses, its detail must hold none
of the identifiers. The streams come from the catalog, so a new stream is covered; what is
expected (no identifier in any detail) is written here.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from civicguard.catalog.loader import demo_catalog
from civicguard.catalog.model import FieldType, Stream
from civicguard.ingest.decode import Decoder, ReadingError
from civicguard.ingest.model import Device, Reason, Transport

NOW = 1_790_000_000.0
CATALOG = demo_catalog()
DECODER = Decoder(CATALOG)

#: A licence plate, a MAC address, a citizen id, an e-mail address and a phone number.
IDENTIFIERS = (
    "AGS-744-K",
    "3c:22:fb:10:aa:01",
    "CURP-QWE-7711",
    "ana.p@example.org",
    "+52 449 555 0199",
)


def _device(stream: Stream) -> Device:
    return Device(id=f"dev-{stream.name}", stream=stream.name, lat=21.88, lon=-102.29)


def _good_values(stream: Stream) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in stream.fields:
        if spec.type is FieldType.BOOLEAN:
            out[spec.name] = True
        elif spec.type is FieldType.STRING_LIST:
            out[spec.name] = []
        elif spec.type is FieldType.STRING:
            out[spec.name] = spec.choices[0] if spec.choices else "x"
        else:
            low, high = spec.range or (0.0, 1.0)
            out[spec.name] = int(low) if spec.type is FieldType.INTEGER else (low + high) / 2
    return out


def _variants(stream: Stream, canary: str) -> list[dict[str, Any]]:
    """Readings of ``stream`` carrying ``canary`` in each field and envelope key in turn."""
    base = {"seq": 1, "ts": NOW, "values": _good_values(stream)}
    out = []
    for spec in stream.fields:
        for wrong in (canary, [canary], {canary: canary}, canary * 9):
            out.append(base | {"values": base["values"] | {spec.name: wrong}})
    out.append(base | {"values": base["values"] | {canary: 1}})
    for key in ("device", "stream", "seq", "ts", "values", "location", "position"):
        out.append(base | {key: canary})
        out.append(base | {key: [canary]})
    out.append(base | {canary: canary})
    out.append(base | {"position": {"lat": canary, "lon": 0}})
    return out


@pytest.mark.parametrize("stream", CATALOG.streams, ids=lambda s: s.name)
def test_no_refusal_of_any_stream_echoes_an_identifier(stream: Stream) -> None:
    refused = 0
    for canary in IDENTIFIERS:
        items = _variants(stream, canary)
        result = DECODER.decode(_device(stream), items, transport=Transport.HTTP, received_at=NOW)
        refused += len(result.rejections)
        for rejection in result.rejections:
            for identifier in IDENTIFIERS:
                assert identifier not in rejection.detail, (rejection.reason, rejection.detail)
                assert identifier.lower() not in rejection.detail.lower(), rejection.detail
            assert rejection.reason in set(Reason)
    assert refused > 5 * len(IDENTIFIERS), "the variants must be refused for this test to mean much"


def test_a_refusal_names_the_field_and_the_rule() -> None:
    anpr = CATALOG.stream("traffic.anpr")
    values = _good_values(anpr) | {"vehicle_class": "AGS-744-K"}
    items = [
        {"seq": 1, "ts": NOW, "values": values},
        {"seq": 2, "ts": "AGS-744-K", "values": _good_values(anpr)},
        {"seq": 3, "ts": NOW, "device": "AGS-744-K", "values": _good_values(anpr)},
    ]
    result = DECODER.decode(_device(anpr), items, transport=Transport.HTTP, received_at=NOW)
    by_index = {r.index: r for r in result.rejections}
    assert by_index[0].reason is Reason.NOT_ALLOWED_VALUE
    assert "values.vehicle_class" in by_index[0].detail
    assert "car" in by_index[0].detail  # the rule: the allowed choices
    assert by_index[1].reason is Reason.WRONG_TYPE
    assert by_index[1].detail.startswith("ts:")
    assert by_index[2].reason is Reason.DEVICE_MISMATCH
    assert "device" in by_index[2].detail


@pytest.mark.parametrize("seq", [2**63, 2**64 + 5, 10**30])
def test_a_sequence_number_beyond_64_bits_is_refused_with_a_reason(seq: int) -> None:
    substation = CATALOG.stream("power.substation")
    good = {"seq": 7, "ts": NOW, "values": _good_values(substation)}
    items = [good, good | {"seq": seq}]
    result = DECODER.decode(_device(substation), items, transport=Transport.HTTP, received_at=NOW)
    (rejection,) = result.rejections
    assert rejection.reason is Reason.OUT_OF_RANGE
    assert rejection.detail.startswith("seq:")
    assert rejection.index == 1
    assert rejection.seq is None  # a dead letter's seq column is 64-bit too
    assert [int(s) for b in result.batches for s in b.seq] == [7]


@pytest.mark.parametrize("body", [b"[]", b"[ ]"])
def test_an_empty_array_is_refused_with_a_reason(body: bytes) -> None:
    with pytest.raises(ReadingError) as raised:
        DECODER.parse_body(body)
    assert raised.value.reason is Reason.MISSING_FIELD
    assert "no readings" in raised.value.detail


def test_over_http_a_huge_seq_and_an_empty_array_get_a_reason(platform, provision) -> None:
    import httpx

    from civicguard.web.server import WebServer

    _, secret = provision("power.substation")
    good = _good_values(CATALOG.stream("power.substation"))
    reading = {"seq": 2**63, "ts": platform.clock.now(), "values": good}
    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    try:
        auth = {"Authorization": f"Bearer {secret}"}
        url = f"{web.url}/api/v1/ingest"
        huge = httpx.post(url, headers=auth, content=orjson.dumps(reading))
        empty = httpx.post(url, headers=auth, content=b"[]")
    finally:
        web.stop()
    assert huge.status_code == 422, huge.text
    assert [r["reason"] for r in huge.json()["rejected"]] == ["out_of_range"]
    assert empty.status_code == 422, empty.text
    assert "missing_field" in empty.text
