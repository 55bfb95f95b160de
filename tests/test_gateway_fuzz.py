"""Fuzzing the gateway's OpenAPI document with Schemathesis against the real gateway and services.

The cluster of :mod:`tests.test_gateway_scope` (real NATS, incident store, search, scheduler,
gateway; three cameras of three departments, an incident on each) is fuzzed twice, operation by
operation, with inputs Schemathesis derives from ``/api/v1/openapi.json`` (schema examples,
boundary values, methods the path lacks, then random valid and invalid data): once without
credentials, where every operation but health, login and single sign-on must answer 401, and once
with the API token of a user holding every role (dispatcher, police, ops, admin) of
urban-management, so the handlers behind the authentication run. No input may get a server error
(5xx) or break the connection. Half of the generated path parameters are ids of the fixture's
cameras and incidents, so the handlers get past their 404s (an id drawn from the id pattern at
random names nothing).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from retina.services.core.settings import GatewaySettings
from retina.services.gateway.accounts import AccountStore
from retina.services.gateway.app import GatewayState, create_app
from retina.services.incidents.casebook import CASE_NAMESPACE
from tests.conftest import python_cli
from tests.test_gateway_scope import CAMERAS, PASSWORD, City
from tests.test_gateway_scope import city as scope_city

pytestmark = pytest.mark.slow
city = scope_city  # the cluster fixture of the scope tests (a cluster of this module's own)

FUZZER = "um-fuzzer"
ROLES = ("dispatcher", "supervisor", "police", "ops", "admin")
# the operations that answer without credentials
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/auth/oidc/login"),
    ("GET", "/api/v1/auth/oidc/callback"),
}
EVENTS = "/api/v1/events"
# A camera's current frame comes from the worker analysing it; this cluster has none, so a camera
# in scope answers its documented 503 (tests/test_gateway_loop.py takes real frames).
FRAME = "/api/v1/cameras/{camera_id}/frame"
# ids in the fixture's cluster, for the path parameters of these names
KNOWN = {
    "incident_id": ["inc-um", "inc-tr", "inc-parks"],
    # the cases the incidents opened (a case's id derives from the incident that opened it)
    "case_id": [str(uuid.uuid5(CASE_NAMESPACE, incident)) for incident in ("inc-um", "inc-tr", "inc-parks")],
    "camera_id": sorted(CAMERAS),
    "name": ["0.jpg", "dispatch-1.jpg"],
}
# DELETE /cameras/{camera_id} gets only the camera the fuzz itself makes (the example of
# POST /cameras), not the fixture's: the later operations and tests want those to exist.
KNOWN_TO_DELETE = {"camera_id": ["gate-east"]}
FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def gateway_document() -> dict[str, Any]:
    """The OpenAPI document of the gateway's routes (it depends on nothing but the code;
    test_the_served_openapi_document_is_valid_openapi_3 checks it is the one the gateway serves)."""
    settings = GatewaySettings.load({"allow_unauthenticated": True})
    return create_app(GatewayState(settings, None, None, None)).openapi()  # type: ignore[arg-type]


# Loaded when the module is imported, before the cluster is up (Schemathesis's schemas loaded from
# a fixture do not work with this pytest); every call is sent to the cluster's gateway.
schema = schemathesis.openapi.from_dict(gateway_document())


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Half the time, ids of the fixture's cameras and incidents in place of generated ones."""
    if not path_parameters:
        return st.just(path_parameters)
    known = KNOWN_TO_DELETE if context.operation.method.upper() == "DELETE" else KNOWN
    steered = {
        key: st.sampled_from(known[key]) if key in known else st.just(value)
        for key, value in path_parameters.items()
    }
    return st.one_of(st.just(path_parameters), st.fixed_dictionaries(steered))


@pytest.fixture(scope="module")
def fuzzer_token(city: City) -> str:
    """An API token of an urban-management user holding every role."""
    args = ["users", "add", FUZZER, "--department", "urban-management", "--password-stdin"]
    args += [part for role in ROLES for part in ("--role", role)]
    args += ["--data-dir", str(city.cluster.gateway_data_dir)]
    done = subprocess.run(python_cli(*args), input=PASSWORD + "\n", text=True, capture_output=True)
    assert done.returncode == 0, done.stderr
    store = AccountStore(city.cluster.gateway_data_dir / "gateway.sqlite")
    token = store.create_token(FUZZER, 1)[0]
    store.close()
    return token


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_the_served_openapi_document_is_valid_openapi_3(city: City):
    served = schemathesis.openapi.from_url(f"{city.url}/api/v1/openapi.json", timeout=30)
    assert served.raw_schema["openapi"].startswith("3.")
    assert served.raw_schema == schema.raw_schema
    operations = set()
    for result in served.get_all_operations():
        operation = result.ok()  # raises for an operation Schemathesis cannot read
        operations.add((operation.method.upper(), operation.path))
    assert len(operations) == sum(len(methods) for methods in served.raw_schema["paths"].values())
    assert operations > PUBLIC and ("GET", EVENTS) in operations


def call_events(case: Any, base_url: str, headers: dict[str, str]) -> requests.Response:
    """The live-event stream never ends: its status and, when 200, its first event (within 10 s)."""
    response = requests.request(
        **case.as_transport_kwargs(base_url=base_url, headers=headers), stream=True, timeout=10
    )
    try:
        if response.status_code == 200:
            first = next(response.iter_content(chunk_size=None))
            assert first.startswith(b"retry: "), first
        else:
            response.content  # noqa: B018 (read the whole error)
    finally:
        response.close()
    return response


def refused_before_authentication(case: Any, answer: Any) -> bool:
    """An answer FastAPI gives before any dependency runs, so before authentication: 405 for a
    method the path does not have, 400 for a body it cannot parse (not JSON, a broken multipart
    body), 422 for JSON it cannot decode. No handler runs for these."""
    if case.method.upper() != case.operation.method.upper():
        return answer.status_code == 405
    if answer.status_code == 400:
        return True
    detail = answer.json().get("detail") if answer.status_code == 422 else None
    return isinstance(detail, list) and all(error["type"] == "json_invalid" for error in detail)


@FUZZ
@schema.parametrize()
def test_no_input_gets_a_server_error_without_credentials(
    case: Any,
    city: City,
    http: requests.Session,
):
    if case.path == EVENTS:
        answer = call_events(case, city.url, {})
        assert answer.status_code < 500, answer.text
    else:
        answer = case.call_and_validate(city.url, http, checks=[not_a_server_error], timeout=30)
    if (case.operation.method.upper(), case.path) not in PUBLIC:
        assert answer.status_code == 401 or refused_before_authentication(case, answer), (
            f"{case.method} {case.formatted_path} without credentials: {answer.status_code} {answer.text}"
        )


@FUZZ
@schema.parametrize()
def test_no_input_gets_a_server_error_with_every_role(
    case: Any,
    city: City,
    http: requests.Session,
    fuzzer_token: str,
):
    auth = {"Authorization": f"Bearer {fuzzer_token}"}
    if case.path == EVENTS:
        answer = call_events(case, city.url, auth)
        assert answer.status_code < 500, answer.status_code
    elif case.path == FRAME and case.method.upper() == "GET":
        answer = case.call(city.url, http, auth, timeout=30)
        if not no_frame(answer):
            case.validate_response(answer, checks=[not_a_server_error])
    else:
        answer = case.call_and_validate(city.url, http, auth, checks=[not_a_server_error], timeout=30)
    assert answer.status_code != 401, answer.text  # the handlers behind the authentication ran


def no_frame(answer: Any) -> bool:
    """The documented 503 of a camera's frame: this cluster has no worker to take one."""
    if answer.status_code != 503:
        return False
    return answer.json()["detail"].endswith("the camera is not analysed by a live worker")


# Found by fuzzing: a time a protobuf Timestamp cannot hold (before 0001-01-01 or after 9999-12-31
# in UTC, e.g. year 1 with a positive offset) was a 500 where the handler converted it.
OUT_OF_RANGE = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"]


@pytest.mark.parametrize("when", OUT_OF_RANGE)
@pytest.mark.parametrize(
    ("method", "path", "request_", "field"),
    [
        ("GET", "/api/v1/incidents", lambda t: {"params": {"since": t}}, ["query", "since"]),
        ("GET", "/api/v1/incidents", lambda t: {"params": {"until": t}}, ["query", "until"]),
        ("GET", "/api/v1/audit", lambda t: {"params": {"since": t}}, ["query", "since"]),
        ("GET", "/api/v1/audit", lambda t: {"params": {"until": t}}, ["query", "until"]),
        (
            "POST",
            "/api/v1/incidents/inc-um/assign",
            lambda t: {"json": {"assignee": "team 1", "due_at": t}},
            ["body", "due_at"],
        ),
        (
            "POST",
            "/api/v1/search",
            lambda t: {"data": {"track_id": "um-kerb:1:1", "start": t}},
            ["body", "start"],
        ),
        (
            "POST",
            "/api/v1/search",
            lambda t: {"data": {"track_id": "um-kerb:1:1", "end": t}},
            ["body", "end"],
        ),
    ],
)
def test_a_time_out_of_range_is_a_422_naming_the_field(
    city: City,
    fuzzer_token: str,
    method: str,
    path: str,
    request_: Any,
    field: list[str],
    when: str,
):
    with httpx.Client(base_url=city.url, headers={"Authorization": f"Bearer {fuzzer_token}"}) as client:
        answer = client.request(method, path, timeout=30, **request_(when))
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == field and "between 0001-01-01 and 9999-12-31" in error["msg"], error


def test_the_first_and_last_times_a_timestamp_holds_are_taken(city: City, fuzzer_token: str):
    with httpx.Client(base_url=city.url, headers={"Authorization": f"Bearer {fuzzer_token}"}) as client:
        for params in ({"since": "0001-01-01T00:00:00Z"}, {"until": "9999-12-31T23:59:59Z"}):
            assert client.get("/api/v1/incidents", params=params, timeout=30).status_code == 200, params
            assert client.get("/api/v1/audit", params=params, timeout=30).status_code == 200, params
