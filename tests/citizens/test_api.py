"""The citizens' API over a real server: the app backend, residents and the DPO."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from civicguard.citizens.receipts import load_public_key, verify_receipt
from civicguard.platform import Platform
from civicguard.web.server import WebServer
from tests.web.conftest import add_staff, bearer

from .conftest import APP_STREAM, database_bytes

API = "/api/v1"
CITIZEN = "elena-3317"


@pytest.fixture
def server(platform: Platform) -> Iterator[WebServer]:
    add_staff(platform)
    web = WebServer(platform, "127.0.0.1", 0)
    web.start()
    yield web
    web.stop()


@pytest.fixture
def client(server: WebServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


@pytest.fixture
def staff(server: WebServer, platform: Platform) -> dict[str, dict[str, str]]:
    now = platform.clock.now()
    signer = server.app.state.signer
    return {r: bearer(signer.issue(r, r, now)[0]) for r in ("operator", "dpo", "auditor")}


@pytest.fixture
def backend(platform: Platform, provision: object) -> dict[str, str]:
    _, secret = provision(APP_STREAM, "safety-app-backend")  # type: ignore[operator]
    return bearer(secret)


def test_the_app_backend_grants_and_withdraws_with_signed_receipts(
    client: httpx.Client, backend: dict[str, str], platform: Platform
) -> None:
    key = client.get(f"{API}/citizens/consent/public-key").json()
    public = load_public_key(key["pem"].encode())
    granted = client.post(
        f"{API}/citizens/consent/grant", json={"citizen": CITIZEN}, headers=backend
    )
    assert granted.status_code == 201, granted.text
    receipt = granted.json()
    verify_receipt(receipt, public)
    assert receipt["piiPrincipalId"] == CITIZEN
    assert platform.citizens.consent.valid(CITIZEN, APP_STREAM)
    withdrawn = client.post(
        f"{API}/citizens/consent/withdraw", json={"citizen": CITIZEN}, headers=backend
    )
    assert withdrawn.status_code == 200
    verify_receipt(withdrawn.json(), public)
    assert not platform.citizens.consent.valid(CITIZEN, APP_STREAM)
    again = client.post(
        f"{API}/citizens/consent/withdraw", json={"citizen": CITIZEN}, headers=backend
    )
    assert again.status_code == 422 and "no consent in force" in again.json()["detail"]


def test_only_a_consent_streams_device_may_act_for_citizens(
    client: httpx.Client, provision: object
) -> None:
    body = {"citizen": CITIZEN}
    assert client.post(f"{API}/citizens/consent/grant", json=body).status_code == 401
    wrong = client.post(
        f"{API}/citizens/consent/grant", json=body, headers=bearer("not-a-device-secret")
    )
    assert wrong.status_code == 401
    _, secret = provision("power.substation")  # type: ignore[operator]
    other = client.post(f"{API}/citizens/export", json=body, headers=bearer(secret))
    assert other.status_code == 403 and "does not rest on consent" in other.json()["detail"]


def test_a_grant_for_a_purpose_the_stream_lacks_is_refused(
    client: httpx.Client, backend: dict[str, str]
) -> None:
    response = client.post(
        f"{API}/citizens/consent/grant",
        json={"citizen": CITIZEN, "purposes": ["marketing"]},
        headers=backend,
    )
    assert response.status_code == 422
    assert "'marketing'" in response.json()["detail"]


def test_residents_report_without_an_account_and_operators_read_it_scrubbed(
    client: httpx.Client, staff: dict[str, dict[str, str]], platform: Platform
) -> None:
    text = "Street light out at the plaza; reach me on jorge.nava@example.org or 449 178 2290"
    filed = client.post(
        f"{API}/citizens/reports",
        json={"text": text, "category": "street_light", "lat": 21.88, "lon": -102.29},
    )
    assert filed.status_code == 201, filed.text
    listed = client.get(f"{API}/citizens/reports", headers=staff["operator"]).json()
    assert [r["id"] for r in listed] == [filed.json()["id"]]
    assert "jorge.nava" not in listed[0]["text"] and "2290" not in listed[0]["text"]
    raw = database_bytes(platform)
    assert b"jorge.nava@example.org" not in raw and b"178 2290" not in raw


@pytest.mark.parametrize(
    ("body", "status", "mentions"),
    [
        ({"text": "x", "category": "other", "citizen": CITIZEN}, 401, "citizen: only"),
        ({"text": "call 449 178 2290", "category": "other", "lat": 95, "lon": 0}, 422, "lat"),
        ({"text": "call 449 178 2290"}, 422, "category"),
        ({"text": "y" * 9000, "category": "other"}, 413, "at most 8192 bytes"),
    ],
)
def test_bad_reports_are_refused_without_echoing_their_text(
    client: httpx.Client, body: dict[str, object], status: int, mentions: str
) -> None:
    response = client.post(
        f"{API}/citizens/reports",
        content=orjson.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert mentions in response.json()["detail"]
    assert "178 2290" not in response.text


def test_erasure_waits_for_the_dpo_who_carries_it_out(
    client: httpx.Client,
    backend: dict[str, str],
    staff: dict[str, dict[str, str]],
    platform: Platform,
) -> None:
    body = {"citizen": CITIZEN}
    client.post(f"{API}/citizens/consent/grant", json=body, headers=backend)
    exported = client.post(f"{API}/citizens/export", json=body, headers=backend).json()
    assert {i["kind"] for i in exported["items"]} >= {"consent", "consent_receipt"}
    asked = client.post(f"{API}/citizens/erasure", json=body, headers=backend)
    assert asked.status_code == 202 and asked.json()["status"] == "pending"
    pending = client.get(f"{API}/subjects/requests", headers=staff["dpo"]).json()
    assert [r["id"] for r in pending] == [asked.json()["id"]]
    assert CITIZEN not in str(pending)
    done = client.post(f"{API}/subjects/requests/{asked.json()['id']}/fulfil", headers=staff["dpo"])
    assert done.status_code == 200 and done.json()["key_destroyed"] is True
    assert client.get(f"{API}/subjects/requests", headers=staff["dpo"]).json() == []
    assert not platform.citizens.consent.valid(CITIZEN, APP_STREAM)
    counts = client.get(f"{API}/consent/counts", headers=staff["auditor"])
    assert counts.status_code == 200 and counts.json()["dead_letters"] == 0
