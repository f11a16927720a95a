"""The API keeps its own contract: every operation, called by every kind of caller, answers
what its OpenAPI declares and never a server error.

schemathesis generates requests from the app's OpenAPI (valid and invalid ones), and every
request is sent once per caller: a bearer token of each staff role (signed in through the
sign-in route), a device of a non-personal stream (ingest) and the citizen app's backend (the
citizen routes). Each response is checked for a server error, a status code, content type,
headers and body the OpenAPI does not declare. The examples are derandomised, so CI sees the
same requests on every run.

Every failure is collected (operation, caller, check, request as curl) before the test fails,
so one run lists them all. The test also fails if an operation was only ever answered
401/403: then the run says nothing of what lies behind its authentication.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from civicguard.govern import access
from civicguard.govern.accounts import Role
from civicguard.platform import Platform
from civicguard.web.app import create_app

from .conftest import PASSWORD, add_staff, provision, raise_alert

#: Examples per operation and generation mode (valid, invalid); each is sent once per caller.
EXAMPLES = 8

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]


@dataclass
class Findings:
    """What the run saw: failures by operation, and the status codes each operation answered."""

    failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    requests: int = 0

    def report(self) -> str:
        by_check: dict[str, set[str]] = defaultdict(set)
        for label, problems in self.failures.items():
            for problem in problems:
                by_check[problem.split(": ", 2)[1].split(" ", 1)[1]].add(label)
        lines = [f"{len(self.failures)} operations failed; {self.requests} requests sent"]
        lines += [f"   {kind}: {len(ops)} operations" for kind, ops in sorted(by_check.items())]
        for label, problems in sorted(self.failures.items()):
            lines.append(f"== {label}: {len(problems)} failing responses")
            lines.extend(f"   {p}" for p in sorted(set(problems))[:6])
        return "\n".join(lines)


@dataclass
class Api:
    """The app under test, the Authorization header of each caller, and ids that exist."""

    app: Any
    headers: dict[str, dict[str, str]]
    #: Path parameter -> an id that exists, put in place of the generated one half the time.
    known: dict[str, str]


@pytest.fixture
def api(platform: Platform) -> Iterator[Api]:
    """The app with data behind its routes, and the Authorization header of each caller."""
    from civicguard.citizens import RequestKind

    add_staff(platform)
    provision(platform, "air-1", "air.quality")
    door = provision(platform, "door-1", "access.door")
    app_backend = provision(platform, "citizen-app", "citizen.safety_app")
    alert = raise_alert(platform, "door-1")
    assert alert.incident_id is not None
    request = platform.citizens.rights.request("citizen-7", RequestKind.EXPORT, by="staff:dpo")
    known = {
        "alert_id": alert.id,
        "incident_id": alert.incident_id,
        # Not a caller's device: revoking it leaves ingest to the device that calls it.
        "device_id": "air-1",
        "request_id": str(request["id"]),
    }
    app = create_app(platform, heartbeat_s=0.05)
    # The live feed ends as soon as it has said hello: the run must not hang on it.
    app.state.stopping.set()
    headers: dict[str, dict[str, str]] = {}
    with asgi.get_client(app) as client:
        for role in Role:
            response = client.post(
                "http://localhost/api/v1/auth/login",
                json={"username": role.value, "password": PASSWORD},
            )
            assert response.status_code == 200, response.text
            headers[role.value] = {"Authorization": f"Bearer {response.json()['token']}"}
    headers["device"] = {"Authorization": f"Bearer {door}"}
    headers["citizen-app"] = {"Authorization": f"Bearer {app_backend}"}
    headers["anonymous"] = {}
    yield Api(app, headers, known)


def _strategy(operation: Any) -> st.SearchStrategy[Any]:
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    return st.one_of(*(operation.as_strategy(generation_mode=m) for m in modes))


def _admitted(operation: Any, headers: dict[str, dict[str, str]]) -> list[str]:
    """The callers the access table lets through to the operation's own code.

    Only to choose who calls: what each call must answer comes from the OpenAPI.
    """
    method, path = operation.method.upper(), operation.path
    if access.is_public(method, path):
        return ["device", "citizen-app"]
    return [who for who in headers if access.allowed(who, method, path)]


def _exercise(operation: Any, client: Any, api: Api, seen: Findings) -> None:
    label = operation.label
    headers = api.headers
    admitted = _admitted(operation, headers)

    @hypothesis.settings(
        max_examples=EXAMPLES * 2,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        report_multiple_bugs=False,
    )
    @hypothesis.given(
        case=_strategy(operation), anyone=st.sampled_from(sorted(headers)), existing=st.booleans()
    )
    def run(case: Any, anyone: str, existing: bool) -> None:
        if existing and case.path_parameters:
            for name in case.path_parameters.keys() & api.known.keys():
                case.path_parameters[name] = api.known[name]
        for who in [*admitted, anyone]:
            auth = headers[who]
            response = case.call(session=client, headers=auth)
            seen.requests += 1
            seen.statuses[label].add(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS, headers=auth)
            except (Failure, FailureGroup) as exc:
                failures = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
                for failure in failures:
                    seen.failures[label].append(
                        f"as {who}: {response.status_code} {failure.title}: "
                        f"{failure.message.splitlines()[0][:160]}"
                    )

    run()


def test_every_operation_keeps_its_openapi_for_every_caller(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    seen = Findings()
    operations = [result.ok() for result in schema.get_all_operations()]
    with asgi.get_client(api.app) as client:
        for operation in operations:
            _exercise(operation, client, api, seen)
    locked = sorted(
        op.label
        for op in operations
        if seen.statuses[op.label] and seen.statuses[op.label] <= {401, 403}
    )
    assert not seen.failures, seen.report()
    assert locked == [], f"only ever answered 401/403: {locked}"
    # Real objects were answered, and so checked against their schema, not only 404s.
    for label in ("GET /api/v1/alerts/{alert_id}", "GET /api/v1/incidents/{incident_id}"):
        assert 200 in seen.statuses[label], label
    # Every operation of the app was exercised (a route missing from the OpenAPI is not).
    assert len(operations) >= 37


def test_a_broken_rule_is_named_by_where_and_rule_never_by_value(api: Api) -> None:
    app, headers = api.app, api.headers
    canary = "PLATE-ABC123-" + "x" * 60
    with asgi.get_client(app) as client:
        broken = client.post(
            "http://localhost/api/v1/users",
            json={"username": canary, "password": "", "role": "admin"},
            headers=headers["admin"],
        )
        not_json = client.post(
            "http://localhost/api/v1/users",
            data=b"{not json",
            headers={**headers["admin"], "Content-Type": "application/json"},
        )
    assert broken.status_code == 422
    body = broken.json()
    assert body["reason"] == "invalid_request"
    assert sorted((e["where"], e["rule"]) for e in body["errors"]) == [
        ("body.password", "string_too_short"),
        ("body.username", "string_too_long"),
    ]
    assert "PLATE-ABC123" not in broken.text
    assert (not_json.status_code, not_json.json()["reason"]) == (400, "malformed_json")
