"""The DPO's overview on the API: counts equal what was sent, keys by name only, no subjects."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from civicguard.citizens import RequestKind
from civicguard.govern.dpo import privacy_overview
from civicguard.platform import Platform
from civicguard.web.server import WebServer

from .conftest import bearer, provision

PLATES = ["XYZ-987-B", "AGS-123-A"]
CONSENTING = "elena-3317"
STRANGER = "tomas-5150"
REQUESTER = "CURP-GAMA800101HDFRRN09"


def drain(platform: Platform) -> None:
    """Let the processor store everything published so far."""
    while platform.processor.run_once(timeout=0):
        pass


def send(url: str, secret: str, items: list[dict[str, Any]]) -> httpx.Response:
    response = httpx.post(
        f"{url}/api/v1/ingest", headers=bearer(secret), content=json.dumps(items), timeout=10
    )
    assert response.status_code in (200, 202), response.text
    return response


@pytest.fixture
def traffic(platform: Platform, server: WebServer) -> dict[str, Any]:
    """Readings of a non-personal, a personal and a consent-based stream, with refusals."""
    now = platform.clock.now()
    substation = provision(platform, "sub-1", "power.substation")
    camera = provision(platform, "cam-1", "traffic.anpr")
    app = provision(platform, "app-1", "citizen.safety_app")
    power = [
        {"seq": i, "ts": now - i, "values": {"voltage": 11.0, "frequency": 50.0, "load": 20.0}}
        for i in range(1, 4)
    ]
    out_of_range = {
        "seq": 4,
        "ts": now,
        "values": {"voltage": 400.0, "frequency": 50.0, "load": 20.0},
    }
    send(server.url, substation, [*power, out_of_range])
    plates = [
        {
            "seq": i + 1,
            "ts": now - i,
            "values": {"plate": plate, "lane": 2, "speed": 40.0, "vehicle_class": "car"},
        }
        for i, plate in enumerate(PLATES)
    ]
    send(server.url, camera, plates)
    platform.citizens.consent.grant(CONSENTING, "citizen.safety_app")
    located = {"lat": 21.8818, "lon": -102.2916, "accuracy": 12.0}
    send(
        server.url,
        app,
        [
            {"seq": 1, "ts": now, "values": {"citizen": CONSENTING, **located}},
            {"seq": 2, "ts": now, "values": {"citizen": STRANGER, **located}},
        ],
    )
    request = platform.citizens.rights.request(REQUESTER, RequestKind.ERASURE, by="staff:dpo")
    drain(platform)
    platform.retention.run()
    return {"power": len(power), "plates": len(plates), "request": request}


def streams_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in doc["streams"]}


def test_the_overview_counts_what_was_sent(
    platform: Platform, client: httpx.Client, tokens: dict[str, str], traffic: dict[str, Any]
) -> None:
    response = client.get("/api/v1/dpo/overview", headers=bearer(tokens["dpo"]))
    assert response.status_code == 200, response.text
    doc = response.json()
    streams = streams_of(doc)
    assert set(streams) == {s.name for s in platform.catalog.streams}

    power = streams["power.substation"]
    assert power["process"]["readings"] == traffic["power"]
    assert power["process"]["kept"] == traffic["power"] * 3  # voltage, frequency, load
    assert power["process"]["refused"] == 1
    assert power["process"]["pseudonymised"] == 0
    assert power["process"]["consent_admitted"] is None  # not a consent-based stream
    assert power["stored"] == {
        "readings": traffic["power"],
        "dead_letters": 1,
        "dead_letters_by_reason": {"out_of_range": 1},
    }
    assert {f["treatment"] for f in power["fields"]} == {"keep"}

    anpr = streams["traffic.anpr"]
    assert anpr["process"]["readings"] == anpr["stored"]["readings"] == traffic["plates"]
    assert anpr["process"]["pseudonymised"] == traffic["plates"]
    assert anpr["process"]["kept"] == traffic["plates"] * 3  # lane, speed, vehicle_class
    plate = next(f for f in anpr["fields"] if f["name"] == "plate")
    assert (plate["treatment"], plate["identifier"]) == ("pseudonymise", "licence_plate")
    assert anpr["legal_basis"] == "public_task"
    assert anpr["retention_days"] == 30
    assert anpr["pseudonym_keys"]["alive"] == len(anpr["pseudonym_keys"]["names"]) >= 1
    assert all(n.startswith("pseudonym/traffic.anpr/") for n in anpr["pseudonym_keys"]["names"])

    app = streams["citizen.safety_app"]
    assert app["process"]["readings"] == app["stored"]["readings"] == 1
    assert (app["process"]["consent_admitted"], app["process"]["consent_refused"]) == (1, 1)
    assert app["process"]["refused"] == 1
    assert app["process"]["pseudonymised"] == 1
    assert app["process"]["dropped"] == 1  # accuracy
    assert app["stored"]["dead_letters_by_reason"] == {"no_consent": 1}
    assert app["time_bucket_s"] == 300
    assert {f["name"]: f["treatment"] for f in app["fields"]} == {
        "citizen": "pseudonymise",
        "lat": "generalise",  # the reading's position becomes its cell
        "lon": "generalise",
        "accuracy": "drop",
    }
    assert "each reading's own position" in app["place"]

    # Process counters and stored figures are labelled as what they are.
    assert "restart" in doc["figures"]["process"]
    assert "database" in doc["figures"]["stored"]

    [pending] = doc["pending_requests"]
    assert pending["id"] == traffic["request"]["id"]
    assert (pending["kind"], pending["requested_by"]) == ("erasure", "staff:dpo")
    assert set(pending) == {"id", "kind", "requested_at", "requested_by", "waiting_days"}

    alive = platform.keys.names()
    keys = doc["keys"]
    assert keys["subject_keys_alive"] == sum(n.startswith("subject/") for n in alive) >= 2
    assert "sign/consent-receipts" in keys["platform_keys"]
    assert "seal/device-secrets" in keys["platform_keys"]
    assert sum(keys["alive_by_namespace"].values()) == len(alive)

    retention = doc["retention"]
    assert retention["last_run_at"] == doc["generated_at"]
    assert {"readings", "consents", "citizen_reports", "alert_marks"} <= set(
        retention["last_run_removed"]
    )
    assert retention["policy_days"]["citizen_reports"] == 365


def test_the_overview_names_no_subject_and_holds_no_key_bytes(
    platform: Platform, client: httpx.Client, tokens: dict[str, str], traffic: dict[str, Any]
) -> None:
    text = client.get("/api/v1/dpo/overview", headers=bearer(tokens["auditor"])).text
    for citizen in (CONSENTING, STRANGER, REQUESTER):
        assert citizen not in text
        assert platform.citizens.index.handle(citizen) not in text
    for plate in PLATES:
        assert plate not in text
        assert plate.replace("-", "") not in text
    for name in platform.keys.names():
        if name.startswith("subject/"):
            assert name not in text
            continue
        secret = platform.keys.get_or_create(name)
        for spelling in (secret.hex(), base64.b64encode(secret).decode(), str(list(secret))):
            assert spelling not in text, name
        assert not name.startswith("pseudonym/") or name in text


def test_the_service_document_is_the_api_document(
    platform: Platform, client: httpx.Client, tokens: dict[str, str], traffic: dict[str, Any]
) -> None:
    api = client.get("/api/v1/dpo/overview", headers=bearer(tokens["dpo"])).json()
    assert json.loads(json.dumps(privacy_overview(platform).as_dict())) == api


@pytest.mark.parametrize("role", ["operator", "analyst", "admin"])
def test_other_roles_are_refused(client: httpx.Client, tokens: dict[str, str], role: str) -> None:
    response = client.get("/api/v1/dpo/overview", headers=bearer(tokens[role]))
    assert response.status_code == 403
    assert client.get("/api/v1/dpo/overview").status_code == 401


def test_the_dpo_page_is_served_without_a_session(client: httpx.Client) -> None:
    response = client.get("/dpo")
    assert response.status_code == 200
    assert "/static/dpo.js" in response.text
    assert client.get("/static/dpo.js").status_code == 200
