"""A pipeline step that fails acknowledges nothing it has not stored."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from civicguard.ingest.model import Transport
from civicguard.platform import Platform

#: The ``provision`` fixture of tests/conftest.py: (stream) -> (Device, secret).
ProvisionFn = Any


def test_a_failed_store_step_is_delivered_again_and_stored(
    platform: Platform, provision: ProvisionFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    device, _ = provision("air.quality")
    now = platform.clock.now()
    body = [
        {"seq": s, "ts": now - 100 + s, "values": {"pm25": 9, "pm10": 20, "no2": 30}}
        for s in range(1, 51)
    ]
    bad = {"seq": 99, "ts": now, "values": {"pm25": 9, "pm10": 20, "no2": 99_999}}
    result = platform.ingest.submit(device, orjson.dumps([*body, bad]), Transport.HTTP)
    assert result.accepted == 50 and len(result.rejections) == 1

    write = platform.store.readings.write
    calls = {"n": 0}

    def failing_once(batches: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database went away")
        return write(batches)

    monkeypatch.setattr(platform.store.readings, "write", failing_once)
    with pytest.raises(ConnectionError):
        platform.processor.run_once(timeout=1.0)
    # The next step gets the same events again and stores them; nothing was acknowledged.
    while platform.processor.run_once(timeout=0.5):
        pass
    assert platform.store.readings.count() == 50
    assert platform.store.dead_letters.count_by_reason() == {"out_of_range": 1}


def test_closing_the_platform_drains_what_the_log_holds(
    platform: Platform, provision: ProvisionFn
) -> None:
    device, _ = provision("air.quality")
    now = platform.clock.now()
    platform.start_processing()
    sent = 0
    for b in range(20):
        body = [
            {"seq": s, "ts": now - 20_000 + s, "values": {"pm25": 9, "pm10": 20, "no2": 30}}
            for s in range(b * 500 + 1, (b + 1) * 500 + 1)
        ]
        sent += platform.ingest.submit(device, orjson.dumps(body), Transport.HTTP).accepted
    platform.close()  # right after the last answer
    assert sent == 10_000
    assert platform.store.readings.count() == sent
