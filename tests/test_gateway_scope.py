"""The gateway's front door with real services: who may read and change what, across departments.

One cluster (real NATS with per-role users, incident store, search, scheduler, gateway; no worker)
holds three cameras: ``um-kerb`` of urban-management shared with police, ``tr-junction`` of
traffic shared with nobody, ``parks-gate`` of parks shared with everyone (``*``). Incidents on
them are published by a real NATS client logged in as a worker. Then every endpoint is called as
each kind of user, and every answer is checked: an id outside the caller's scope is 404 like an
unknown one, a missing role 403, no credentials 401, and nothing crosses departments.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import yaml

from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.cli.common import load
from retina.services.core import bus
from retina.services.core.incident import BBox, IncidentMessage
from retina.services.gateway.accounts import AccountStore
from tests.conftest import MODEL, python_cli, wait_for

pytestmark = pytest.mark.slow

ZONE = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]]
CAMERAS = {
    "um-kerb": {"department": "urban-management", "shared_with": ["police"]},
    "tr-junction": {"department": "traffic", "shared_with": []},
    "parks-gate": {"department": "parks", "shared_with": ["*"]},
}
PASSWORD = "a long test password"
# user → (department, roles)
USERS = {
    "um-dispatcher": ("urban-management", ["dispatcher"]),
    "tr-dispatcher": ("traffic", ["dispatcher"]),
    "police-dispatcher": ("police", ["dispatcher"]),
    "police-officer": ("police", ["police"]),
    "um-ops": ("urban-management", ["ops"]),
    "tr-ops": ("traffic", ["ops"]),
    "root": ("platform", ["admin"]),
}


def camera(camera_id: str) -> dict:
    return {
        "id": camera_id,
        "url": f"rtsp://user:secret@127.0.0.1:9/{camera_id}",
        **CAMERAS[camera_id],
        "algorithms": [{"name": "illegal_parking", "zones": [{"name": "kerb", "polygon": ZONE}]}],
    }


def incident(camera_id: str, incident_id: str) -> IncidentMessage:
    spec = CAMERAS[camera_id]
    now = datetime.now(UTC)
    return IncidentMessage(
        id=incident_id,
        event="new",
        revision=0,
        camera_id=camera_id,
        camera_name=camera_id,
        department=spec["department"],
        visible_to=[spec["department"], *spec["shared_with"]],
        location=None,
        algorithm="illegal_parking",
        algorithm_version="test",
        zone="kerb",
        started_at=now,
        last_seen_at=now,
        ended_at=None,
        dwell_seconds=60.0,
        bbox=BBox(x1=0.2, y1=0.6, x2=0.4, y2=0.9),
        confidence=0.9,
        track_id=7,
    )


async def publish_as_worker(cluster: LocalCluster, messages: list[IncidentMessage]) -> None:
    nc = await bus.connect(cluster.nats_url, "test-worker", user="worker", password=cluster.token("worker"))
    js = nc.jetstream()
    await bus.ensure_incident_stream(js)
    for message in messages:
        await js.publish(message.subject, message.to_json(), headers={"Nats-Msg-Id": message.msg_id})
    await nc.close()


@dataclass
class City:
    cluster: LocalCluster
    url: str
    tokens: dict[str, str]

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def call(self, user: str | None, method: str, path: str, **kwargs) -> httpx.Response:
        with self.client(user) as client:
            return client.request(method, path, **kwargs)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    root = tmp_path_factory.mktemp("city")
    config = root / "retina.yaml"
    config.write_text(
        yaml.safe_dump({"detector": {"model": str(MODEL)}, "cameras": [camera(c) for c in CAMERAS]})
    )
    cluster = LocalCluster(config, root / "data", ClusterPorts.free(workers=0), workers=0)
    cluster.gateway_flags = ["--verify-seconds", "0"]
    try:
        cluster.start(load(str(config)).config.cameras)
        for name, (department, roles) in USERS.items():
            args = ["users", "add", name, "--department", department, "--password-stdin"]
            args += [part for role in roles for part in ("--role", role)]
            args += ["--data-dir", str(cluster.gateway_data_dir)]
            done = subprocess.run(python_cli(*args), input=PASSWORD + "\n", text=True, capture_output=True)
            assert done.returncode == 0, done.stderr
        store = AccountStore(cluster.gateway_data_dir / "gateway.sqlite")
        tokens = {name: store.create_token(name, 1)[0] for name in USERS}
        store.close()
        asyncio.run(
            publish_as_worker(
                cluster,
                [
                    incident("um-kerb", "inc-um"),
                    incident("tr-junction", "inc-tr"),
                    incident("parks-gate", "inc-parks"),
                ],
            )
        )
        city = City(cluster, cluster.gateway_url, tokens)
        wait_for(
            lambda: (
                len(city.call("um-dispatcher", "GET", "/api/v1/incidents").json().get("incidents", [])) == 2
            ),
            30,
            "the incidents to reach the store",
        )
        yield city
    finally:
        cluster.stop()


def ids(response: httpx.Response, key: str = "incidents") -> set[str]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()[key]}


def test_each_department_lists_only_its_own_and_shared_incidents(city: City):
    assert ids(city.call("um-dispatcher", "GET", "/api/v1/incidents")) == {"inc-um", "inc-parks"}
    assert ids(city.call("tr-dispatcher", "GET", "/api/v1/incidents")) == {"inc-tr", "inc-parks"}
    assert ids(city.call("police-dispatcher", "GET", "/api/v1/incidents")) == {"inc-um", "inc-parks"}
    # a filter in the request cannot widen the scope
    asked = city.call("um-dispatcher", "GET", "/api/v1/incidents", params={"camera": "tr-junction"})
    assert ids(asked) == set()


# (method, path, body kind) of every endpoint that names one incident
INCIDENT_ENDPOINTS = [
    ("GET", "/api/v1/incidents/{id}", None),
    ("GET", "/api/v1/incidents/{id}/snapshot", None),
    ("GET", "/api/v1/incidents/{id}/clip", None),
    ("GET", "/api/v1/incidents/{id}/media/dispatch-1.jpg", None),
    ("POST", "/api/v1/incidents/{id}/assign", {"json": {"assignee": "team-3"}}),
    ("POST", "/api/v1/incidents/{id}/handle", {"data": {"note": "towed"}}),
    ("POST", "/api/v1/incidents/{id}/verify", {"data": {"outcome": "clear"}}),
    ("POST", "/api/v1/incidents/{id}/close", {"json": {"reason": "false_alarm"}}),
    ("POST", "/api/v1/incidents/{id}/reopen", {"json": {}}),
]


@pytest.mark.parametrize(("method", "path", "body"), INCIDENT_ENDPOINTS)
@pytest.mark.parametrize(
    ("user", "incident_id", "expected"),
    [
        (None, "inc-um", 401),  # unauthenticated
        ("police-officer", "inc-um", 403),  # wrong role
        ("ops", "inc-um", 403),
        ("tr-dispatcher", "inc-um", 404),  # not shared with traffic: exactly like an unknown id
        ("um-dispatcher", "inc-tr", 404),
        ("um-dispatcher", "no-such-incident", 404),
    ],
)
def test_no_incident_endpoint_reaches_across_departments(
    city, method, path, body, user, incident_id, expected
):
    user = "um-ops" if user == "ops" else user
    answer = city.call(user, method, path.format(id=incident_id), **(body or {}))
    assert answer.status_code == expected, answer.text
    if expected == 404:
        unknown = city.call(user, method, path.format(id="no-such-incident"), **(body or {}))
        assert (unknown.status_code, answer.json()["detail"].replace(incident_id, "X")) == (
            404,
            unknown.json()["detail"].replace("no-such-incident", "X"),
        )


def test_refused_writes_change_nothing(city: City):
    before = city.call("tr-dispatcher", "GET", "/api/v1/incidents/inc-tr").json()
    assert (
        city.call(
            "um-dispatcher", "POST", "/api/v1/incidents/inc-tr/close", json={"reason": "other"}
        ).status_code
        == 404
    )
    after = city.call("tr-dispatcher", "GET", "/api/v1/incidents/inc-tr").json()
    assert after["dispatch_status"] == before["dispatch_status"] == "new"
    assert [e["action"] for e in after["history"]] == ["new"]


def test_shared_incidents_can_be_worked_by_the_departments_they_are_shared_with(city: City):
    answer = city.call(
        "police-dispatcher", "POST", "/api/v1/incidents/inc-parks/assign", json={"assignee": "unit 9"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["dispatch_status"] == "assigned"
    history = city.call("um-dispatcher", "GET", "/api/v1/incidents/inc-parks").json()["history"]
    assert history[-1]["action"] == "assign" and history[-1]["actor"] == "user:police-dispatcher"


def test_cameras_are_scoped_and_their_passwords_hidden(city: City):
    listed = city.call("um-dispatcher", "GET", "/api/v1/cameras").json()["cameras"]
    assert {c["camera"]["id"] for c in listed} == {"um-kerb", "parks-gate"}
    assert all("secret" not in c["camera"]["url"] for c in listed)  # a dispatcher never sees passwords
    own = city.call("um-ops", "GET", "/api/v1/cameras/um-kerb").json()
    assert "user:secret@" in own["camera"]["url"]  # ops of the owning department do
    shared = city.call("um-ops", "GET", "/api/v1/cameras/parks-gate").json()
    assert "secret" not in shared["camera"]["url"]
    assert city.call("um-dispatcher", "GET", "/api/v1/cameras/tr-junction").status_code == 404
    assert city.call(None, "GET", "/api/v1/cameras").status_code == 401


def test_only_ops_of_the_owning_department_change_a_camera(city: City):
    body = camera("tr-junction") | {"name": "renamed"}
    assert city.call("um-ops", "PUT", "/api/v1/cameras/tr-junction", json=body).status_code == 404
    assert city.call("um-ops", "DELETE", "/api/v1/cameras/tr-junction").status_code == 404
    parks = camera("parks-gate") | {"name": "renamed"}
    assert (
        city.call("um-ops", "PUT", "/api/v1/cameras/parks-gate", json=parks).status_code == 403
    )  # visible, not theirs
    assert (
        city.call("um-dispatcher", "PUT", "/api/v1/cameras/um-kerb", json=camera("um-kerb")).status_code
        == 403
    )
    foreign = camera("tr-junction") | {"id": "tr-new"}
    assert city.call("um-ops", "POST", "/api/v1/cameras", json=foreign).status_code == 403
    unchanged = city.call("tr-dispatcher", "GET", "/api/v1/cameras/tr-junction").json()["camera"]
    assert unchanged["name"] != "renamed"
    created = city.call("tr-ops", "POST", "/api/v1/cameras", json=foreign)
    assert created.status_code == 201, created.text
    assert city.call("tr-ops", "DELETE", "/api/v1/cameras/tr-new").status_code == 200


def test_a_wrong_camera_config_is_a_422_naming_the_field(city: City):
    bad = camera("um-kerb") | {"id": "um-bad"}
    bad["algorithms"][0]["zones"][0]["polygon"] = [[0.1, 0.1], [0.2, 0.2]]
    answer = city.call("um-ops", "POST", "/api/v1/cameras", json=bad)
    assert answer.status_code == 422
    assert "algorithms.0.zones.0.polygon" in answer.text


def test_cluster_and_audit_need_their_roles(city: City):
    assert city.call("um-dispatcher", "GET", "/api/v1/cluster").status_code == 403
    assert city.call("um-ops", "GET", "/api/v1/cluster").status_code == 200
    unplaced = city.call("um-ops", "GET", "/api/v1/cluster").json().get("unplaced", {})
    assert "tr-junction" not in unplaced  # ops see only the placement of cameras in their scope
    assert "tr-junction" in city.call("root", "GET", "/api/v1/cluster").json().get("unplaced", {})
    for user in ("um-dispatcher", "um-ops", "police-officer"):
        assert city.call(user, "GET", "/api/v1/audit").status_code == 403
    assert city.call(None, "GET", "/api/v1/audit").status_code == 401


def test_search_is_for_police_and_only_over_their_scope(city: City):
    assert (
        city.call("um-dispatcher", "POST", "/api/v1/search", data={"incident_id": "inc-um"}).status_code
        == 403
    )
    # another department's incident as the query: 404, as an unknown one
    assert (
        city.call("police-officer", "POST", "/api/v1/search", data={"incident_id": "inc-tr"}).status_code
        == 404
    )
    crop = city.call("police-officer", "GET", "/api/v1/search/crops/tr-junction:1700000000000:7")
    assert crop.status_code == 404
    searches = city.call("root", "GET", "/api/v1/audit", params={"action": "search"}).json()["entries"]
    assert any(e["actor"] == "police-officer" and e["target"] == "inc-tr" for e in searches)


def test_health_is_open_and_nothing_else_is(city: City):
    assert city.call(None, "GET", "/healthz").status_code == 200
    ready = city.call(None, "GET", "/readyz")
    assert ready.status_code == 200, ready.text
    spec = city.call(None, "GET", "/api/v1/openapi.json")
    assert spec.status_code == 200
    for path, methods in spec.json()["paths"].items():
        if path in ("/healthz", "/readyz", "/api/v1/auth/login") or "/oidc/" in path:
            continue
        for method in methods:
            concrete = path.replace("{incident_id}", "inc-um").replace("{camera_id}", "um-kerb")
            concrete = concrete.replace("{track_id}", "um-kerb:1:1").replace("{name}", "x.jpg")
            answer = city.call(None, method.upper(), concrete)
            assert answer.status_code == 401, f"{method} {path}: {answer.status_code}"


def test_tokens_expire_and_can_be_revoked(city: City):
    store = AccountStore(city.cluster.gateway_data_dir / "gateway.sqlite")
    token, record = store.create_token("um-dispatcher", 1 / 86400)  # one second
    with httpx.Client(base_url=city.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/v1/auth/me").status_code == 200
        time.sleep(1.2)
        assert client.get("/api/v1/auth/me").status_code == 401
    token, record = store.create_token("um-dispatcher", 1)
    with httpx.Client(base_url=city.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/v1/auth/me").status_code == 200
        done = subprocess.run(
            python_cli("tokens", "revoke", record.id, "--data-dir", str(city.cluster.gateway_data_dir)),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert client.get("/api/v1/auth/me").status_code == 401
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    revoked = store.audit_entries(action="token.revoke")
    assert revoked and revoked[0].target == record.id
    store.close()


def login(city: City, name: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(f"{city.url}/api/v1/auth/login", json={"name": name, "password": password}, timeout=30)


def test_browser_sessions_need_the_csrf_token_for_changes(city: City):
    answer = login(city, "um-dispatcher")
    assert answer.status_code == 200, answer.text
    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("retina_session="))
    assert "HttpOnly" in session and "Secure" in session and "SameSite=strict" in session
    value = session.split(";")[0].split("=", 1)[1]
    csrf = answer.json()["csrf_token"]
    jar = {"Cookie": f"retina_session={value}"}
    with httpx.Client(base_url=city.url, headers=jar) as browser:
        assert browser.get("/api/v1/incidents").status_code == 200  # reading needs no CSRF token
        body = {"assignee": "team 1"}
        refused = browser.post("/api/v1/incidents/inc-um/assign", json=body)
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.text
        wrong = browser.post("/api/v1/incidents/inc-um/assign", json=body, headers={"X-CSRF-Token": "guess"})
        assert wrong.status_code == 403
        done = browser.post("/api/v1/incidents/inc-um/assign", json=body, headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200, done.text
        assert browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert browser.get("/api/v1/incidents").status_code == 401


def test_repeated_failed_logins_are_throttled(city: City):
    for _ in range(5):
        assert login(city, "tr-ops", "wrong password!").status_code == 401
    locked = login(city, "tr-ops")  # even the right password waits now
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    refused = [
        e
        for e in AccountStore(city.cluster.gateway_data_dir / "gateway.sqlite").audit_entries(action="login")
        if e.target == "tr-ops" and e.outcome == "refused"
    ]
    assert len(refused) == 6


def test_media_paths_cannot_escape_the_incident(city: City):
    for name in ("..%2F..%2Fum-kerb%2Finc-um%2F0.jpg", "../inc-tr/0.jpg", ".hidden", "a/b.jpg"):
        answer = city.call("um-dispatcher", "GET", f"/api/v1/incidents/inc-um/media/{name}")
        assert answer.status_code == 404, (name, answer.status_code)


def test_uploads_over_the_limit_or_not_images_are_refused(city: City):
    not_image = city.call(
        "um-dispatcher",
        "POST",
        "/api/v1/incidents/inc-um/handle",
        files={"photo": ("x.jpg", b"hello", "image/jpeg")},
    )
    assert not_image.status_code == 422 and "photo" in not_image.text
    huge = b"\xff\xd8\xff" + bytes(21 * 1024 * 1024)
    too_big = city.call(
        "police-officer", "POST", "/api/v1/search", files={"image": ("x.jpg", huge, "image/jpeg")}
    )
    assert too_big.status_code == 413 and "image" in too_big.text


def test_every_user_change_is_audited(city: City):
    entries = AccountStore(city.cluster.gateway_data_dir / "gateway.sqlite").audit_entries(
        action="user.add", limit=100
    )
    assert {e.target for e in entries} >= set(USERS)
    listed = subprocess.run(
        python_cli(
            "audit",
            "list",
            "--action",
            "user.add",
            "--json",
            "--data-dir",
            str(city.cluster.gateway_data_dir),
        ),
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0 and "um-dispatcher" in listed.stdout
