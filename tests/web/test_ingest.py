"""POST /api/v1/ingest: device authentication, size limits and every refusal with its reason."""

from __future__ import annotations

import json

import httpx
import pytest

from civicguard.clock import ManualClock
from civicguard.ingest.registry import sign
from civicguard.platform import Platform
from civicguard.web.server import WebServer

from .conftest import bearer, provision

URL = "/api/v1/ingest"


def reading(seq: int, ts: float, **values: object) -> dict[str, object]:
    """One door-controller reading on the wire."""
    return {"seq": seq, "ts": ts, "values": values or {"open": True, "access_granted": False}}


def drain(platform: Platform) -> None:
    """Let the processor store what ingest published."""
    while platform.processor.run_once(timeout=0.05):
        pass


def dead_letters(platform: Platform) -> list[dict[str, object]]:
    drain(platform)
    return platform.store.dead_letters.query()


def test_bearer_device_ingests_one_reading_and_a_batch(
    platform: Platform, client: httpx.Client, clock: ManualClock
) -> None:
    secret = provision(platform, "door-1", "access.door")
    now = clock.now()
    one = client.post(URL, headers=bearer(secret), json=reading(1, now))
    assert one.status_code == 202
    assert one.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    batch = [reading(2, now), reading(3, now, open=False, access_granted=True)]
    many = client.post(URL, headers=bearer(secret), json=batch)
    assert many.json()["accepted"] == 2
    drain(platform)
    stored = platform.store.readings.query(device_id="door-1")
    assert sorted(r["seq"] for r in stored) == [1, 2, 3]


def test_signed_body_is_accepted_and_a_retransmission_counts_as_duplicate(
    platform: Platform, client: httpx.Client, clock: ManualClock
) -> None:
    secret = provision(platform, "door-2", "access.door")
    body = json.dumps(reading(7, clock.now())).encode()
    headers = {"X-Device-Id": "door-2", "X-Signature": sign(secret, body)}
    assert client.post(URL, headers=headers, content=body).json()["accepted"] == 1
    again = client.post(URL, headers=headers, content=body)
    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_partly_valid_batch_is_202_and_wholly_invalid_is_422(
    platform: Platform, client: httpx.Client, clock: ManualClock
) -> None:
    secret = provision(platform, "door-3", "access.door")
    now = clock.now()
    mixed = [reading(1, now), reading(2, now, open="yes", access_granted=False)]
    response = client.post(URL, headers=bearer(secret), json=mixed)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["reason"], r["index"]) for r in body["rejected"]] == [("wrong_type", 1)]

    bad = client.post(URL, headers=bearer(secret), json=[reading(3, now + 3600)])
    assert bad.status_code == 422
    assert bad.json()["accepted"] == 0
    assert bad.json()["rejected"][0]["reason"] == "timestamp_in_future"
    reasons = {d["reason"] for d in dead_letters(platform)}
    assert {"wrong_type", "timestamp_in_future"} <= reasons


def test_body_that_is_not_json_is_400_malformed_json(
    platform: Platform, client: httpx.Client
) -> None:
    secret = provision(platform, "door-4", "access.door")
    response = client.post(URL, headers=bearer(secret), content=b"{not json")
    assert response.status_code == 400
    assert response.json()["reason"] == "malformed_json"
    assert response.json()["detail"]
    assert [d["reason"] for d in dead_letters(platform)] == ["malformed_json"]


def test_oversized_body_is_413_by_content_length_and_by_actual_size(
    platform: Platform, client: httpx.Client
) -> None:
    secret = provision(platform, "door-5", "access.door")
    limit = platform.catalog.limits.max_payload_bytes
    big = b"[" + b" " * limit + b"]"
    declared = client.post(URL, headers=bearer(secret), content=big)
    assert declared.status_code == 413
    assert declared.json()["reason"] == "oversized_payload"

    def chunks() -> object:
        # No Content-Length: the server must count as it reads and stop at the limit.
        for _ in range(limit // 4096 + 2):
            yield b" " * 4096

    streamed = client.post(URL, headers=bearer(secret), content=chunks())  # type: ignore[arg-type]
    assert streamed.status_code == 413
    assert streamed.json()["reason"] == "oversized_payload"
    letters = dead_letters(platform)
    assert [d["reason"] for d in letters] == ["oversized_payload", "oversized_payload"]
    assert all(d["payload"] == "" for d in letters)


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "bad_credentials"),
        ({"Authorization": "Bearer not-a-device-secret"}, 401, "bad_credentials"),
        ({"X-Device-Id": "door-6", "X-Signature": "00" * 32}, 401, "bad_signature"),
        ({"X-Device-Id": "ghost", "X-Signature": "00" * 32}, 401, "unknown_device"),
        ({"X-Device-Id": "door-6"}, 401, "bad_credentials"),
    ],
    ids=["none", "bad-token", "bad-signature", "unknown-device", "no-signature"],
)
def test_failed_device_authentication_is_401_and_kept_without_content(
    platform: Platform,
    client: httpx.Client,
    *,
    clock: ManualClock,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    provision(platform, "door-6", "access.door")
    body = json.dumps(reading(1, clock.now())).encode()
    response = client.post(URL, headers=headers, content=body)
    assert response.status_code == status
    assert response.json()["reason"] == reason
    assert response.headers["www-authenticate"] == "Bearer"
    [letter] = dead_letters(platform)
    assert letter["reason"] == reason
    assert letter["payload"] == ""
    assert platform.store.readings.count() == 0


def test_revoked_device_is_403(
    platform: Platform, client: httpx.Client, clock: ManualClock
) -> None:
    secret = provision(platform, "door-7", "access.door")
    platform.registry.revoke("door-7", clock.now())
    body = json.dumps(reading(1, clock.now())).encode()
    by_token = client.post(URL, headers=bearer(secret), content=body)
    assert by_token.status_code == 403
    assert by_token.json()["reason"] == "revoked_device"
    signed = {"X-Device-Id": "door-7", "X-Signature": sign(secret, body)}
    assert client.post(URL, headers=signed, content=body).status_code == 403
    assert [d["reason"] for d in dead_letters(platform)] == ["revoked_device"] * 2


def test_a_reading_for_another_device_is_refused(
    platform: Platform, client: httpx.Client, clock: ManualClock
) -> None:
    secret = provision(platform, "door-8", "access.door")
    provision(platform, "door-9", "access.door")
    claim = {**reading(1, clock.now()), "device": "door-9"}
    response = client.post(URL, headers=bearer(secret), json=claim)
    assert response.status_code == 422
    assert response.json()["rejected"][0]["reason"] == "device_mismatch"


def test_licence_plates_sent_over_http_are_never_stored_raw(
    platform: Platform, server: WebServer, client: httpx.Client, clock: ManualClock
) -> None:
    secret = provision(platform, "anpr-1", "traffic.anpr")
    plate = "AGS-123-XY"
    ok = {
        "seq": 1,
        "ts": clock.now(),
        "values": {"plate": plate, "lane": 1, "speed": 42.0, "vehicle_class": "car"},
    }
    bad = {
        "seq": 2,
        "ts": clock.now(),
        "values": {"plate": plate, "lane": 99, "speed": 42.0, "vehicle_class": "car"},
    }
    response = client.post(URL, headers=bearer(secret), json=[ok, bad])
    assert response.json()["accepted"] == 1
    drain(platform)
    with platform.store.engine.connect() as conn:
        dump = "\n".join(conn.connection.iterdump())
    assert "AGS" not in dump
    assert "123XY" not in dump.replace("-", "")
