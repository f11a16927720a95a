"""Operators mark alerts true or false; marks are stored scrubbed and summed per detector."""

from __future__ import annotations

import httpx

from civicguard.platform import Platform

from .conftest import bearer, provision, raise_alert


def test_marks_are_stored_scrubbed_and_the_latest_counts(
    platform: Platform, client: httpx.Client, tokens: dict[str, str]
) -> None:
    provision(platform, "door-1", "access.door")
    first = raise_alert(platform, "door-1")
    second = raise_alert(platform, "door-1")
    raise_alert(platform, "door-1")
    operator, analyst = bearer(tokens["operator"]), bearer(tokens["analyst"])

    shown = client.get(f"/api/v1/alerts/{first.id}", headers=operator).json()
    assert shown["explanation"] == first.explanation and "door_forced" in shown["explanation"]

    note = "Guard Ana (ana.perez@example.com, +52 449 123 4567) found the door wedged open"
    response = client.post(
        f"/api/v1/alerts/{first.id}/mark", json={"verdict": "true", "note": note}, headers=operator
    )
    assert response.status_code == 201, response.text
    mark = response.json()
    assert (mark["verdict"], mark["marked_by"], mark["detector"]) == ("true", "operator", "rules")
    assert "ana.perez@example.com" not in mark["note"] and "449 123 4567" not in mark["note"]
    assert "found the door wedged open" in mark["note"]

    # The analyst overrules the operator on the first alert and marks the second a false alarm.
    for alert_id in (first.id, second.id):
        response = client.post(
            f"/api/v1/alerts/{alert_id}/mark", json={"verdict": "false"}, headers=analyst
        )
        assert response.status_code == 201, response.text
    history = client.get(f"/api/v1/alerts/{first.id}/marks", headers=operator).json()
    assert [(m["verdict"], m["marked_by"]) for m in history] == [
        ("false", "analyst"),
        ("true", "operator"),
    ]
    stored = platform.store.marks.query(alert_id=first.id)
    assert all("ana.perez" not in m.note for m in stored)

    client.post(f"/api/v1/alerts/{second.id}/mark", json={"verdict": "true"}, headers=operator)
    summary = client.get("/api/v1/detectors/feedback", headers=bearer(tokens["auditor"])).json()
    assert summary == [
        {
            "detector": "rules",
            "alerts": 3,
            "marked": 2,
            "marked_true": 1,
            "marked_false": 1,
            "precision": 0.5,
        }
    ]


def test_bad_marks_are_refused_with_what_was_wrong(
    platform: Platform, client: httpx.Client, tokens: dict[str, str]
) -> None:
    provision(platform, "door-2", "access.door")
    alert = raise_alert(platform, "door-2")
    operator = bearer(tokens["operator"])
    missing = client.post("/api/v1/alerts/nope/mark", json={"verdict": "true"}, headers=operator)
    assert missing.status_code == 404 and "nope" in missing.text
    maybe = client.post(
        f"/api/v1/alerts/{alert.id}/mark", json={"verdict": "maybe"}, headers=operator
    )
    assert maybe.status_code == 422 and "verdict" in maybe.text
    long = client.post(
        f"/api/v1/alerts/{alert.id}/mark",
        json={"verdict": "true", "note": "x" * 2001},
        headers=operator,
    )
    assert long.status_code == 422 and "note" in long.text
    as_auditor = bearer(tokens["auditor"])
    auditor = client.post(
        f"/api/v1/alerts/{alert.id}/mark", json={"verdict": "true"}, headers=as_auditor
    )
    assert auditor.status_code == 403
    assert platform.store.marks.query() == []
    feedback = client.get("/api/v1/detectors/feedback", headers=operator).json()
    assert feedback == [
        {
            "detector": "rules",
            "alerts": 1,
            "marked": 0,
            "marked_true": 0,
            "marked_false": 0,
            "precision": None,
        }
    ]
