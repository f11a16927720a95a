"""The API's resources: devices, readings, alerts, incidents, catalog, dead letters, map, users."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from civicguard.clock import ManualClock
from civicguard.detect.model import Severity
from civicguard.ingest.model import Device, Transport
from civicguard.platform import Platform

from .conftest import PASSWORD, bearer, provision, raise_alert
from .test_ingest import drain


def test_login_returns_a_token_and_an_httponly_strict_cookie(
    server: Any, client: httpx.Client
) -> None:
    response = client.post("/api/v1/auth/login", json={"username": "analyst", "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["token"]
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    me = client.get("/api/v1/auth/me")  # the client now carries the cookie
    assert me.json()["username"] == "analyst"
    assert client.get("/api/v1/auth/me", headers=bearer(token)).json()["role"] == "analyst"
    client.post("/api/v1/auth/logout")
    assert client.get("/api/v1/auth/me").status_code == 401


def test_login_with_a_wrong_password_is_401(server: Any, client: httpx.Client) -> None:
    response = client.post("/api/v1/auth/login", json={"username": "admin", "password": "nope"})
    assert response.status_code == 401
    assert response.json() == {
        "reason": "bad_credentials",
        "detail": "unknown user or wrong password",
    }
    assert "set-cookie" not in response.headers


def test_a_forged_or_expired_token_is_401(
    server: Any, client: httpx.Client, tokens: dict[str, str], clock: ManualClock
) -> None:
    payload, _, mac = tokens["admin"].partition(".")
    assert client.get("/api/v1/users", headers=bearer(f"{payload}.{mac[:-2]}AA")).status_code == 401
    clock.advance(13 * 3600)
    assert client.get("/api/v1/users", headers=bearer(tokens["admin"])).status_code == 401


def test_admin_provisions_lists_and_revokes_a_device(
    platform: Platform, client: httpx.Client, tokens: dict[str, str], clock: ManualClock
) -> None:
    admin = bearer(tokens["admin"])
    new = {
        "id": "pump-9",
        "stream": "water.pump",
        "lat": 21.88,
        "lon": -102.29,
        "district": "Norte",
    }
    created = client.post("/api/v1/devices", headers=admin, json=new)
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert platform.registry.by_token(secret).id == "pump-9"
    assert client.post("/api/v1/devices", headers=admin, json=new).status_code == 409
    wrong = client.post("/api/v1/devices", headers=admin, json={**new, "id": "x", "stream": "nope"})
    assert (wrong.status_code, wrong.json()["reason"]) == (422, "unknown_stream")

    listed = client.get("/api/v1/devices", headers=admin).json()
    assert [d["id"] for d in listed] == ["pump-9"]
    assert "secret" not in listed[0]
    assert client.get("/api/v1/devices?district=Sur", headers=admin).json() == []

    revoked = client.post("/api/v1/devices/pump-9/revoke", headers=admin)
    assert revoked.json()["revoked"] is True
    body = json.dumps(
        {"seq": 1, "ts": clock.now(), "values": {"flow": 1, "pressure": 2, "running": True}}
    )
    assert client.post("/api/v1/ingest", headers=bearer(secret), content=body).status_code == 403
    missing = client.post("/api/v1/devices/ghost/revoke", headers=admin)
    assert (missing.status_code, missing.json()["reason"]) == (404, "unknown_device")


def _ingest(platform: Platform, device_id: str, items: list[dict[str, Any]]) -> None:
    device = platform.registry.get(device_id)
    assert device is not None
    platform.ingest.submit(device, json.dumps(items).encode(), Transport.HTTP)
    drain(platform)


def test_readings_filters(
    platform: Platform, client: httpx.Client, tokens: dict[str, str], clock: ManualClock
) -> None:
    provision(platform, "tank-1", "water.tank")
    provision(platform, "tank-2", "water.tank")
    provision(platform, "air-1", "air.quality")
    t0 = clock.now() - 100
    _ingest(
        platform,
        "tank-1",
        [{"seq": i, "ts": t0 + i, "values": {"level": 5.0, "inflow": 1.0}} for i in range(1, 6)],
    )
    _ingest(platform, "tank-2", [{"seq": 1, "ts": t0, "values": {"level": 6.0, "inflow": 1.0}}])
    _ingest(
        platform, "air-1", [{"seq": 1, "ts": t0 + 50, "values": {"pm25": 3, "pm10": 4, "no2": 5}}]
    )
    h = bearer(tokens["operator"])

    def get(query: str) -> list[dict[str, Any]]:
        response = client.get(f"/api/v1/readings?{query}", headers=h)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows

    everything = get("")
    assert len(everything) == 7
    assert everything[0]["device_id"] == "air-1"  # newest first across streams
    assert {r["device_id"] for r in get("stream=water.tank")} == {"tank-1", "tank-2"}
    assert [r["seq"] for r in get("device=tank-1&limit=2")] == [5, 4]
    assert [r["seq"] for r in get(f"device=tank-1&since={t0 + 2}&until={t0 + 4}")] == [3, 2]
    iso = datetime.fromtimestamp(t0 + 4, tz=UTC).isoformat().replace("+00:00", "Z")
    assert [r["seq"] for r in get(f"device=tank-1&since={iso}")] == [5, 4]
    cell = everything[0]["cell"]
    assert {r["cell"] for r in get(f"cell={cell}")} == {cell}
    assert get("limit=1")[0]["values"] == {"pm25": 3.0, "pm10": 4.0, "no2": 5.0}
    naive = client.get("/api/v1/readings?since=2026-01-01T00:00:00", headers=h)
    assert (naive.status_code, naive.json()["reason"]) == (422, "invalid_request")
    unknown = client.get("/api/v1/readings?stream=nope", headers=h)
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "unknown_stream")


def test_personal_streams_need_an_analyst_with_a_declared_purpose(
    platform: Platform, client: httpx.Client, tokens: dict[str, str], clock: ManualClock
) -> None:
    provision(platform, "anpr-2", "traffic.anpr")
    _ingest(
        platform,
        "anpr-2",
        [
            {
                "seq": 1,
                "ts": clock.now(),
                "values": {"plate": "ABC-1234", "lane": 1, "speed": 30.0, "vehicle_class": "car"},
            }
        ],
    )
    url = "/api/v1/readings?stream=traffic.anpr"
    operator = client.get(url + "&purpose=public_safety", headers=bearer(tokens["operator"]))
    assert (operator.status_code, operator.json()["reason"]) == (403, "forbidden")
    by_device = client.get("/api/v1/readings?device=anpr-2", headers=bearer(tokens["operator"]))
    assert by_device.status_code == 403
    no_purpose = client.get(url, headers=bearer(tokens["analyst"]))
    assert (no_purpose.status_code, no_purpose.json()["reason"]) == (403, "purpose_required")
    wrong_purpose = client.get(
        url + "&purpose=environmental_health", headers=bearer(tokens["analyst"])
    )
    assert wrong_purpose.status_code == 403
    ok = client.get(url + "&purpose=public_safety", headers=bearer(tokens["analyst"]))
    assert ok.status_code == 200
    [row] = ok.json()
    assert row["values"]["plate"] != "ABC-1234"
    assert "ABC" not in json.dumps(row)
    # Unfiltered queries never include personal streams, whoever asks.
    assert client.get("/api/v1/readings", headers=bearer(tokens["analyst"])).json() == []


def test_alerts_list_filter_and_get(
    platform: Platform, client: httpx.Client, tokens: dict[str, str], clock: ManualClock
) -> None:
    provision(platform, "door-1", "access.door")
    provision(platform, "sub-1", "power.substation", district="Sur", lat=21.85, lon=-102.27)
    high = raise_alert(platform, "door-1", Severity.HIGH)
    clock.advance(5)
    critical = raise_alert(platform, "sub-1", Severity.CRITICAL, "Frequency out of band")
    h = bearer(tokens["auditor"])
    listed = client.get("/api/v1/alerts", headers=h).json()
    assert [a["id"] for a in listed] == [critical.id, high.id]
    assert [a["id"] for a in client.get("/api/v1/alerts?severity=high", headers=h).json()] == [
        high.id
    ]
    assert [
        a["id"] for a in client.get("/api/v1/alerts?stream=power.substation", headers=h).json()
    ] == [critical.id]
    by_incident = client.get(f"/api/v1/alerts?incident={high.incident_id}", headers=h).json()
    assert [a["id"] for a in by_incident] == [high.id]
    assert (
        client.get(f"/api/v1/alerts?since={clock.now() - 1}", headers=h).json()[0]["id"]
        == critical.id
    )
    one = client.get(f"/api/v1/alerts/{high.id}", headers=h).json()
    assert one["evidence"] == {"open": 1.0, "access_granted": 0.0}
    assert one["severity"] == "high"
    missing = client.get("/api/v1/alerts/ghost", headers=h)
    assert missing.status_code == 404
    assert missing.json()["reason"] == "not_found"


def test_incident_life_cycle_and_invalid_transitions(
    platform: Platform, client: httpx.Client, tokens: dict[str, str]
) -> None:
    provision(platform, "door-1", "access.door")
    alert = raise_alert(platform, "door-1")
    incident_id = alert.incident_id
    h = bearer(tokens["operator"])
    listed = client.get("/api/v1/incidents?status=open", headers=h).json()
    assert [i["id"] for i in listed] == [incident_id]
    detail = client.get(f"/api/v1/incidents/{incident_id}", headers=h).json()
    assert [a["id"] for a in detail["alerts"]] == [alert.id]
    assert detail["district"] == "Centro"

    ack = client.post(
        f"/api/v1/incidents/{incident_id}/acknowledge", headers=h, json={"note": "guard on the way"}
    )
    assert ack.status_code == 200
    assert (ack.json()["status"], ack.json()["acknowledged_by"]) == ("acknowledged", "operator")
    assert ack.json()["note"] == "guard on the way"
    again = client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=h)
    assert (again.status_code, again.json()["reason"]) == (409, "invalid_transition")
    done = client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=h)
    assert (done.json()["status"], done.json()["resolved_by"]) == ("resolved", "operator")
    assert client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=h).status_code == 409
    assert client.get("/api/v1/incidents?status=open", headers=h).json() == []
    assert client.get("/api/v1/incidents?status=bogus", headers=h).status_code == 422
    assert client.post("/api/v1/incidents/ghost/resolve", headers=h).status_code == 404


def test_catalog_lists_streams_fields_treatments_and_purposes(
    client: httpx.Client, tokens: dict[str, str], platform: Platform
) -> None:
    doc = client.get("/api/v1/catalog", headers=bearer(tokens["auditor"])).json()
    assert doc["version"] == platform.catalog.version
    assert set(doc["treatments"]) == {"keep", "drop", "pseudonymise", "generalise", "count"}
    assert "public_safety" in {p["name"] for p in doc["purposes"]}
    anpr = next(s for s in doc["streams"] if s["name"] == "traffic.anpr")
    assert anpr["category"] == "personal"
    plate = next(f for f in anpr["fields"] if f["name"] == "plate")
    assert (plate["treatment"], plate["identifier"]) == ("pseudonymise", "licence_plate")
    assert len(doc["streams"]) == len(platform.catalog.streams)


def test_dead_letters_list_and_filter_by_reason(
    platform: Platform, client: httpx.Client, tokens: dict[str, str]
) -> None:
    secret = provision(platform, "door-1", "access.door")
    client.post("/api/v1/ingest", headers=bearer(secret), content=b"{oops")
    client.post("/api/v1/ingest", headers=bearer("wrong"), content=b"{}")
    drain(platform)
    h = bearer(tokens["analyst"])
    all_letters = client.get("/api/v1/dead-letters", headers=h).json()
    assert [d["reason"] for d in all_letters] == ["bad_credentials", "malformed_json"]
    only = client.get("/api/v1/dead-letters?reason=malformed_json", headers=h).json()
    assert [(d["reason"], d["device_id"]) for d in only] == [("malformed_json", "door-1")]
    bogus = client.get("/api/v1/dead-letters?reason=bogus", headers=h)
    assert (bogus.status_code, bogus.json()["reason"]) == (422, "invalid_request")


class _Streets:
    def geojson(self) -> dict[str, Any]:
        line = {"type": "LineString", "coordinates": [[-102.29, 21.88], [-102.28, 21.88]]}
        feature = {"type": "Feature", "geometry": line, "properties": {"highway": "primary"}}
        return {"type": "FeatureCollection", "features": [feature]}


def test_map_has_devices_and_streets(
    platform: Platform, client: httpx.Client, tokens: dict[str, str]
) -> None:
    provision(platform, "crowd-1", "crowd.counter", district="Centro")
    h = bearer(tokens["operator"])
    empty = client.get("/api/v1/map", headers=h).json()
    assert empty["streets"] == {"type": "FeatureCollection", "features": []}
    [device] = empty["devices"]
    assert (device["id"], device["stream"], device["district"]) == (
        "crowd-1",
        "crowd.counter",
        "Centro",
    )
    assert device["lat"] == 21.8818
    assert empty["streams"]["crowd.counter"]["category"] == "non_personal"
    platform.streets = _Streets()
    with_streets = client.get("/api/v1/map", headers=h).json()
    assert with_streets["streets"]["features"][0]["properties"]["highway"] == "primary"


def test_admin_manages_staff_accounts(
    platform: Platform, client: httpx.Client, tokens: dict[str, str]
) -> None:
    h = bearer(tokens["admin"])
    created = client.post(
        "/api/v1/users",
        headers=h,
        json={"username": "marta", "password": "a long passphrase", "role": "operator"},
    )
    assert created.status_code == 201
    assert "password" not in created.text
    assert "marta" in {u["username"] for u in client.get("/api/v1/users", headers=h).json()}
    login = client.post(
        "/api/v1/auth/login", json={"username": "marta", "password": "a long passphrase"}
    )
    assert login.json()["role"] == "operator"
    dup = client.post(
        "/api/v1/users",
        headers=h,
        json={"username": "marta", "password": "a long passphrase", "role": "operator"},
    )
    assert (dup.status_code, dup.json()["reason"]) == (409, "user_exists")
    bad = client.post(
        "/api/v1/users",
        headers=h,
        json={"username": "pedro", "password": "a long passphrase", "role": "king"},
    )
    assert (bad.status_code, bad.json()["reason"]) == (422, "invalid_user")


def test_openapi_health_and_unknown_paths(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/v1/ingest" in schema["paths"]
    assert client.get("/docs").status_code == 200
    assert client.get("/api/v1/health").json()["status"] == "ok"
    missing = client.get("/api/v1/nothing-here")
    assert (missing.status_code, missing.json()["reason"]) == (404, "not_found")


def test_devices_provisioned_elsewhere_show_up(
    platform: Platform, client: httpx.Client, tokens: dict[str, str]
) -> None:
    platform.registry.provision(
        Device(id="aq-7", stream="air.quality", lat=21.9, lon=-102.3), platform.clock.now()
    )
    ids = [d["id"] for d in client.get("/api/v1/devices", headers=bearer(tokens["analyst"])).json()]
    assert ids == ["aq-7"]
