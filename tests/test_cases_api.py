"""City-management cases through the gateway, with real services: routing, scope, the steps with
their approvals and 回退, the audit trail, and every transition on NATS.

One cluster (real NATS with per-role users, incident store, search, scheduler, gateway; no worker)
is configured with two routing rules — the grid ``420102…`` (江汉 street) goes to
``jianghan-street``, illegal parking elsewhere to ``traffic``, everything else to the camera's
owner. Incidents (one with a snapshot in the object store) are published by a real NATS client
logged in as a worker:

* ``um-kerb`` (urban-management, shared with police, grid 420102001001): two parking incidents five
  minutes apart — one case, routed to jianghan-street;
* ``um-square`` (urban-management, grid 420300): a parking incident (→ traffic, by subcategory)
  and exposed trash (→ urban-management, the owner);
* ``um-gate`` (urban-management, grid 420102009): the case worked step by step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cv2
import httpx
import nats
import numpy as np
import pytest
import yaml

from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.cli.common import load
from retina.services.core import bus
from retina.services.core.cases import CasesConfig, TimeLimit
from retina.services.core.incident import BBox, IncidentMessage, Location, SnapshotRef
from retina.services.gateway.accounts import AccountStore
from tests.conftest import MODEL, wait_for
from tests.gateway_users import add_users

pytestmark = pytest.mark.slow

ZONE = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]]
CAMERAS = {
    "um-kerb": {
        "grid_code": "420102001001",
        "address": "解放大道 100 号",
        "location": {"lat": 30.58, "lon": 114.27},
    },
    "um-square": {"grid_code": "420300", "address": "中山广场", "location": {"lat": 30.55, "lon": 114.30}},
    "um-gate": {
        "grid_code": "420102009",
        "address": "江汉路 1 号",
        "location": {"lat": 30.60, "lon": 114.25},
    },
}
ROUTING = [
    {"grid_prefix": "420102", "department": "jianghan-street"},
    {"categories": ["05-05"], "department": "traffic"},
]
PASSWORD = "a long test password"
USERS = {
    "js-dispatcher": ("jianghan-street", ["dispatcher"]),
    "js-supervisor": ("jianghan-street", ["supervisor"]),
    "js-both": ("jianghan-street", ["dispatcher", "supervisor"]),
    "um-dispatcher": ("urban-management", ["dispatcher"]),
    "tr-dispatcher": ("traffic", ["dispatcher"]),
    "parks-both": ("parks", ["dispatcher", "supervisor"]),
    "police-officer": ("police", ["police"]),
    "um-ops": ("urban-management", ["ops"]),
    "tr-supervisor": ("traffic", ["supervisor"]),
    "city-admin": ("platform", ["admin"]),
}
START = datetime.now(UTC) - timedelta(minutes=30)


def camera(camera_id: str) -> dict:
    return {
        "id": camera_id,
        "url": f"rtsp://127.0.0.1:9/{camera_id}",
        "department": "urban-management",
        "shared_with": ["police"],
        **CAMERAS[camera_id],
        "algorithms": [
            {"name": "illegal_parking", "zones": [{"name": "kerb", "polygon": ZONE}]},
            {"name": "exposed_trash", "zones": [{"name": "kerb", "polygon": ZONE}]},
        ],
    }


def incident(
    camera_id: str,
    incident_id: str,
    minutes: float = 0,
    algorithm: str = "illegal_parking",
    snapshot: bool = False,
) -> IncidentMessage:
    spec = CAMERAS[camera_id]
    start = START + timedelta(minutes=minutes)
    return IncidentMessage(
        id=incident_id, event="new", revision=0, camera_id=camera_id, camera_name=camera_id,
        department="urban-management", visible_to=["urban-management", "police"],
        location=Location(**spec["location"]), algorithm=algorithm, algorithm_version="test", zone="kerb",
        started_at=start, last_seen_at=start + timedelta(seconds=60), ended_at=None, dwell_seconds=60.0,
        bbox=BBox(x1=0.2, y1=0.6, x2=0.4, y2=0.9), confidence=0.9, track_id=7,
        grid_code=spec["grid_code"], address=spec["address"],
        snapshot=SnapshotRef(
            path=f"{camera_id}/{incident_id}/0.jpg", object=f"retina-media/{camera_id}/{incident_id}/0.jpg",
            width=64, height=48, thumbnail_jpeg_base64="",
        ) if snapshot else None,
    )  # fmt: skip


def jpeg() -> bytes:
    image = np.full((48, 64, 3), (40, 90, 160), np.uint8)
    cv2.rectangle(image, (12, 28), (30, 44), (0, 0, 255), 2)
    return cv2.imencode(".jpg", image)[1].tobytes()


async def publish_as_worker(cluster: LocalCluster, messages: list[IncidentMessage]) -> None:
    nc = await bus.connect(cluster.nats_url, "test-worker", user="worker", password=cluster.token("worker"))
    js = nc.jetstream()
    media = await bus.ensure_all(js)
    for message in messages:
        if message.snapshot is not None:
            await media.put(message.snapshot.path, jpeg())
        await js.publish(message.subject, message.to_json(), headers={"Nats-Msg-Id": message.msg_id})
    await nc.close()


async def case_subjects(cluster: LocalCluster, case_id: str) -> list[str]:
    """The subjects of every message of ``case_id`` in the CASES stream, in order (read as operator)."""
    nc = await nats.connect(cluster.nats_url, user="operator", password=cluster.token("operator"))
    try:
        js = nc.jetstream()
        info = await js.stream_info(bus.CASE_STREAM)
        subjects = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(bus.CASE_STREAM, seq)
            if message.subject.endswith(f".{case_id}"):
                subjects.append(message.subject)
        return subjects
    finally:
        await nc.close()


@dataclass
class City:
    cluster: LocalCluster
    tokens: dict[str, str]

    def call(self, user: str | None, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        with httpx.Client(base_url=self.cluster.gateway_url, headers=headers, timeout=30) as client:
            return client.request(method, path, **kwargs)

    def ok(self, user: str, method: str, path: str, **kwargs) -> dict:
        answer = self.call(user, method, path, **kwargs)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def case_of(self, incident_id: str, user: str = "um-dispatcher") -> dict:
        (case,) = self.ok(user, "GET", "/api/v1/cases", params={"incident": incident_id})["cases"]
        return case


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    root = tmp_path_factory.mktemp("cases")
    config = root / "retina.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "detector": {"model": str(MODEL)},
                "cases": {"routing": ROUTING},
                "cameras": [camera(c) for c in CAMERAS],
            },
            allow_unicode=True,
        )
    )
    cluster = LocalCluster(config, root / "data", ClusterPorts.free(workers=0), workers=0)
    cluster.gateway_flags = ["--verify-seconds", "0"]
    try:
        cluster.start(load(str(config)).config.cameras)
        tokens = add_users(cluster, USERS, PASSWORD)
        messages = [
            incident("um-kerb", "kerb-1", snapshot=True),
            incident("um-kerb", "kerb-2", minutes=5),
            incident("um-square", "square-parking"),
            incident("um-square", "square-trash", algorithm="exposed_trash"),
            incident("um-gate", "gate-1"),
        ]
        asyncio.run(publish_as_worker(cluster, messages))
        city = City(cluster, tokens)
        wait_for(
            lambda: len(city.ok("um-dispatcher", "GET", "/api/v1/cases")["cases"]) == 4,
            30,
            "the incidents to become four cases",
        )
        wait_for(
            lambda: city.case_of("kerb-1")["incident_count"] == 2 and bool(snapshot_url(city)),
            30,
            "the second kerb incident and the snapshot to reach the store",
        )
        yield city
    finally:
        cluster.stop()


def snapshot_url(city: City) -> str | None:
    case = city.case_of("kerb-1", "js-dispatcher")
    detail = city.ok("js-dispatcher", "GET", f"/api/v1/cases/{case['id']}")
    return detail["incidents"][0]["snapshot_url"]


def listed(city: City, user: str, **params) -> dict[str, tuple[str, str]]:
    cases = city.ok(user, "GET", "/api/v1/cases", params=params)["cases"]
    return {
        case["camera_id"] + "/" + case["category_code"]: (case["department"], case["routed_by"])
        for case in cases
    }


def test_cases_are_routed_and_each_department_sees_its_own(city: City):
    everything = {
        "um-kerb/05-05": ("jianghan-street", "grid 420102*"),
        "um-square/05-05": ("traffic", "category 05-05"),
        "um-square/01-02": ("urban-management", "camera owner"),
        "um-gate/05-05": ("jianghan-street", "grid 420102*"),
    }
    assert listed(city, "um-dispatcher") == everything  # the cameras' owner sees every case
    assert listed(city, "js-dispatcher") == {k: v for k, v in everything.items() if v[0] == "jianghan-street"}
    assert listed(city, "js-supervisor") == listed(city, "js-dispatcher")
    assert listed(city, "tr-dispatcher") == {"um-square/05-05": ("traffic", "category 05-05")}
    assert listed(city, "parks-both") == {}
    # filters narrow the scope, never widen it
    assert listed(city, "tr-dispatcher", camera="um-kerb") == {}
    assert set(listed(city, "um-dispatcher", grid="420102")) == {"um-kerb/05-05", "um-gate/05-05"}
    assert set(listed(city, "um-dispatcher", category="01")) == {"um-square/01-02"}
    assert listed(city, "um-dispatcher", overdue="true") == {}
    kerb = city.case_of("kerb-2")
    assert (kerb["category_name"], kerb["major_name"], kerb["incident_count"]) == (
        "机动车乱停放",
        "街面秩序",
        2,
    )
    assert (kerb["grid_code"], kerb["address"], kerb["status"]) == ("420102001001", "解放大道 100 号", "new")
    assert kerb["location"] == {"lat": 30.58, "lon": 114.27} and kerb["due_at"] is None
    assert kerb["visible_to"] == ["jianghan-street", "urban-management", "police"]


def test_the_case_detail_carries_its_incidents_and_their_evidence(city: City):
    case = city.case_of("kerb-1", "js-dispatcher")
    detail = city.ok("js-dispatcher", "GET", f"/api/v1/cases/{case['id']}")
    assert [(i["id"], i["link"]) for i in detail["incidents"]] == [
        ("kerb-1", "opened"),
        ("kerb-2", "same_place"),
    ]
    assert [h["action"] for h in detail["history"]] == ["open", "merge"]
    assert detail["history"][1]["details"]["incident_id"] == "kerb-2"
    assert detail["steps"] == ["assign", "return", "close"]
    first = detail["incidents"][0]
    photo = city.call("js-dispatcher", "GET", first["snapshot_url"])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(photo.content, np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)
    # the street office sees the evidence through the case, not the camera's incidents themselves
    assert city.call("js-dispatcher", "GET", "/api/v1/incidents/kerb-1/snapshot").status_code == 404
    assert (
        city.call("js-dispatcher", "GET", first["snapshot_url"].replace("kerb-1", "gate-1")).status_code
        == 404
    )
    assert detail["incidents"][1]["snapshot_url"] is None  # the second one came without a photo
    store = AccountStore(city.cluster.gateway_data_dir / "gateway.sqlite")
    viewed = store.audit_entries(action="media.view", actor="js-dispatcher")
    store.close()
    assert [(e.target, e.details["kind"]) for e in viewed] == [("kerb-1", "snapshot")]


CASE_ENDPOINTS = [
    ("GET", "/api/v1/cases/{id}", None),
    ("GET", "/api/v1/cases/{id}/incidents/kerb-1/snapshot", None),
    ("GET", "/api/v1/cases/{id}/incidents/kerb-1/clip", None),
    ("POST", "/api/v1/cases/{id}/assign", {"assignee": "team 3"}),
    ("POST", "/api/v1/cases/{id}/extension", {"due_at": "2030-01-01T00:00:00Z", "reason": "tow truck"}),
    ("POST", "/api/v1/cases/{id}/extension/approve", {}),
    ("POST", "/api/v1/cases/{id}/extension/reject", {}),
    ("POST", "/api/v1/cases/{id}/postponement", {"due_at": "2030-01-01T00:00:00Z", "reason": "permit"}),
    ("POST", "/api/v1/cases/{id}/postponement/approve", {}),
    ("POST", "/api/v1/cases/{id}/postponement/reject", {}),
    ("POST", "/api/v1/cases/{id}/return", {"reason": "not ours"}),
    ("POST", "/api/v1/cases/{id}/close", {"reason": "false_alarm"}),
]


@pytest.mark.parametrize(("method", "path", "body"), CASE_ENDPOINTS)
@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (None, 401),  # no credentials
        ("police-officer", 403),  # wrong role
        ("um-ops", 403),
        ("parks-both", 404),  # another department: exactly like an unknown id
    ],
)
def test_no_case_endpoint_reaches_across_departments(city: City, method, path, body, user, expected):
    case_id = city.case_of("kerb-1")["id"]
    answer = city.call(user, method, path.format(id=case_id), **({"json": body} if body is not None else {}))
    assert answer.status_code == expected, answer.text
    if expected == 404:
        unknown = city.call(
            user, method, path.format(id="no-such-case"), **({"json": body} if body is not None else {})
        )
        assert unknown.status_code == 404
        assert answer.json()["detail"].replace(case_id, "X") == unknown.json()["detail"].replace(
            "no-such-case", "X"
        )
    assert city.case_of("kerb-1")["status"] == "new"  # nothing refused changed anything


def test_the_list_is_refused_without_the_role_or_credentials(city: City):
    assert city.call(None, "GET", "/api/v1/cases").status_code == 401
    assert city.call("police-officer", "GET", "/api/v1/cases").status_code == 403
    assert city.call("um-ops", "GET", "/api/v1/cases").status_code == 403
    assert city.call("um-dispatcher", "GET", "/api/v1/cases", params={"status": "lost"}).status_code == 422


def test_a_case_worked_through_dispatch_extension_return_and_close(city: City):
    case_id = city.case_of("gate-1")["id"]
    path = f"/api/v1/cases/{case_id}"

    # 派遣 by the street office the grid routes it to; the clock starts (1 working hour for 05-05)
    assert city.call("um-ops", "POST", f"{path}/assign", json={"assignee": "x"}).status_code == 403
    assert city.call("tr-dispatcher", "POST", f"{path}/assign", json={"assignee": "x"}).status_code == 404
    assigned = city.ok("js-dispatcher", "POST", f"{path}/assign", json={"assignee": "patrol 2"})
    dispatched = datetime.fromisoformat(assigned["dispatched_at"]).timestamp()
    due = datetime.fromisoformat(assigned["due_at"]).timestamp()
    assert due == pytest.approx(CasesConfig().calendar.due(dispatched, TimeLimit(working_hours=1)))
    assert 0 < assigned["working_seconds_left"] <= 3600 and assigned["overdue"] is False
    assert assigned["steps"] == ["assign", "extend_request", "postpone_request", "return", "close"]

    # 延期: only the responsible department asks; a supervisor other than the asker decides
    later = datetime.fromtimestamp(due + 86400, UTC).isoformat()
    body = {"due_at": later, "reason": "waiting for the tow truck"}
    assert city.call("um-dispatcher", "POST", f"{path}/extension", json=body).status_code == 403
    earlier = {**body, "due_at": datetime.fromtimestamp(due - 60, UTC).isoformat()}
    assert city.call("js-both", "POST", f"{path}/extension", json=earlier).status_code == 422
    asked = city.ok("js-both", "POST", f"{path}/extension", json=body)
    assert (asked["pending_request"], asked["pending_by"]) == ("extension", "user:js-both")
    assert city.call("js-dispatcher", "POST", f"{path}/extension/approve", json={}).status_code == 403  # role
    own = city.call("js-both", "POST", f"{path}/extension/approve", json={})
    assert own.status_code == 409 and "cannot also decide it" in own.json()["detail"]
    assert city.ok("js-supervisor", "GET", path)["steps"] == ["extend_approve", "extend_reject"]
    approved = city.ok("js-supervisor", "POST", f"{path}/extension/approve", json={"note": "agreed"})
    assert approved["extensions"] == 1 and approved["due_at"] == asked["pending_due_at"]
    assert approved["pending_request"] == ""

    # 回退: outside the street office's remit; back to the camera's owner, with the reason
    assert city.call("js-dispatcher", "POST", f"{path}/return", json={"reason": " "}).status_code == 422
    returned = city.ok("js-dispatcher", "POST", f"{path}/return", json={"reason": "private car park"})
    facts = ("status", "department", "return_reason", "returned_by")
    assert [returned[name] for name in facts] == [
        "returned", "urban-management", "private car park", "jianghan-street"
    ]  # fmt: skip
    assert city.call("js-dispatcher", "GET", path).status_code == 404  # no longer theirs
    # only the owner sends it elsewhere (转派): here to traffic, whose clock starts afresh
    assert city.call("tr-dispatcher", "POST", f"{path}/assign", json={"assignee": "x"}).status_code == 404
    rerouted = city.ok(
        "um-dispatcher", "POST", f"{path}/assign", json={"assignee": "traffic duty", "department": "traffic"}
    )
    assert (rerouted["department"], rerouted["status"], rerouted["routed_by"]) == (
        "traffic", "assigned", "reassigned by user:um-dispatcher"
    )  # fmt: skip
    reroute_again = city.call(
        "tr-dispatcher", "POST", f"{path}/assign", json={"assignee": "x", "department": "parks"}
    )
    assert reroute_again.status_code == 403  # traffic works it, but only the owner re-routes
    closed = city.ok("tr-dispatcher", "POST", f"{path}/close", json={"reason": "resolved", "note": "moved"})
    assert (closed["status"], closed["closed_by"], closed["steps"]) == ("closed", "user:tr-dispatcher", [])
    assert city.call("tr-dispatcher", "POST", f"{path}/close", json={"reason": "resolved"}).status_code == 409

    history = city.ok("um-dispatcher", "GET", path)["history"]
    assert [(h["action"], h["actor"], h["department"]) for h in history] == [
        ("open", "system:cases", "jianghan-street"),
        ("assign", "user:js-dispatcher", "jianghan-street"),
        ("extend_request", "user:js-both", "jianghan-street"),
        ("extend_approve", "user:js-supervisor", "jianghan-street"),
        ("return", "user:js-dispatcher", "urban-management"),
        ("assign", "user:um-dispatcher", "traffic"),
        ("close", "user:tr-dispatcher", "traffic"),
    ]
    approval = history[3]["details"]
    assert (approval["requested_by"], approval["reason"], approval["decision"]) == (
        "user:js-both", "waiting for the tow truck", "approved"
    )  # fmt: skip
    assert history[4]["details"]["reason"] == "private car park"

    store = AccountStore(city.cluster.gateway_data_dir / "gateway.sqlite")
    audited = [(e.actor, e.action, e.outcome) for e in store.audit_entries(limit=1000) if e.target == case_id]
    store.close()
    assert ("js-supervisor", "case.extend_approve", "ok") in audited
    assert ("js-both", "case.extend_approve", "refused") in audited
    assert ("um-dispatcher", "case.extend_request", "refused") in audited
    assert ("tr-dispatcher", "case.close", "ok") in audited

    def published() -> bool:
        return len(asyncio.run(case_subjects(city.cluster, case_id))) == 7

    wait_for(published, 30, "every transition of the case on NATS")
    assert asyncio.run(case_subjects(city.cluster, case_id)) == [
        f"retina.cases.{department}.{action}.{case_id}"
        for department, action in [
            ("jianghan-street", "open"),
            ("jianghan-street", "assign"),
            ("jianghan-street", "extend_request"),
            ("jianghan-street", "extend_approve"),
            ("urban-management", "return"),
            ("traffic", "assign"),
            ("traffic", "close"),
        ]
    ]


# -- assessment (综合评价); every figure is checked by hand in tests/test_case_assessment.py -----------

ASSESSMENT_ENDPOINTS = ["/api/v1/assessment", "/api/v1/assessment/ai"]


@pytest.mark.parametrize("path", ASSESSMENT_ENDPOINTS)
def test_the_assessment_is_for_supervisors_and_admins_of_their_own_department(city: City, path: str):
    assert city.call(None, "GET", path).status_code == 401  # no credentials
    assert city.call("js-dispatcher", "GET", path).status_code == 403  # wrong role
    assert city.call("um-ops", "GET", path).status_code == 403
    other = city.call("js-supervisor", "GET", path, params={"department": "traffic"})
    unknown = city.call("js-supervisor", "GET", path, params={"department": "no-such-department"})
    assert other.status_code == unknown.status_code == 404  # another department: as an unknown one
    assert city.ok("js-supervisor", "GET", path, params={"department": "jianghan-street"})
    assert city.ok("city-admin", "GET", path, params={"department": "traffic"})["department"] == "traffic"


def test_each_department_sees_its_own_figures_and_drills_down_to_its_cases(city: City):
    every = city.ok("um-dispatcher", "GET", "/api/v1/cases")["cases"]
    expected: dict[str, tuple[int, int]] = {}
    for case in every:
        count, closed = expected.get(case["department"], (0, 0))
        expected[case["department"]] = (count + 1, closed + (case["status"] == "closed"))
    rows = city.ok("city-admin", "GET", "/api/v1/assessment")["rows"]
    assert {row["key"]: (row["cases"], row["closed"]) for row in rows} == expected
    for row in rows:
        assert row["close_rate"] == pytest.approx(row["closed"] / row["cases"])
        assert set(row) >= {"on_time_rate", "rework_rate", "extension_rate", "due", "postponed"}
    (own,) = city.ok("tr-supervisor", "GET", "/api/v1/assessment")["rows"]
    assert own["key"] == "traffic" and (own["cases"], own["closed"]) == expected["traffic"]
    # drill-down: a row's cases through the cases list's filters
    handlers = city.ok("tr-supervisor", "GET", "/api/v1/assessment", params={"by": "handler"})["rows"]
    for row in handlers:
        params = {"department": "traffic", **({"assignee": row["key"]} if row["key"] else {})}
        listed_cases = city.ok("tr-dispatcher", "GET", "/api/v1/cases", params=params)["cases"]
        if row["key"]:
            assert len(listed_cases) == row["cases"]
    areas = city.ok("city-admin", "GET", "/api/v1/assessment", params={"by": "area"})["rows"]
    by_area = {row["key"]: row["cases"] for row in areas}
    assert by_area == {"420102": 2, "420300": 2}
    grid = city.ok("um-dispatcher", "GET", "/api/v1/cases", params={"grid": "420102"})["cases"]
    assert len(grid) == by_area["420102"]
    future = {"since": "2099-01-01T00:00:00Z"}
    assert city.ok("city-admin", "GET", "/api/v1/assessment", params=future)["rows"] == []
    assert city.call("city-admin", "GET", "/api/v1/assessment", params={"by": "planet"}).status_code == 422


def test_the_ai_accuracy_counts_the_reviewers_decisions(city: City):
    answer = city.ok("city-admin", "GET", "/api/v1/assessment/ai")
    rules = {row["key"]: row for row in answer["rules"]}
    assert rules["illegal_parking"]["incidents"] == 4 and rules["exposed_trash"]["incidents"] == 1
    every = city.ok("um-dispatcher", "GET", "/api/v1/cases")["cases"]
    closed_parking = sum(
        c["incident_count"] for c in every if c["category_code"] == "05-05" and c["status"] == "closed"
    )
    parking = rules["illegal_parking"]
    assert parking["reviewed"] == parking["confirmed"] + parking["false_alarms"] == closed_parking
    cameras = {row["key"]: row["incidents"] for row in answer["cameras"]}
    assert cameras == {"um-kerb": 2, "um-square": 2, "um-gate": 1}
    # traffic: the incidents of the cases it is responsible for, not the cameras it does not see
    traffic = city.ok("tr-supervisor", "GET", "/api/v1/assessment/ai")
    traffic_cases = [c for c in every if c["department"] == "traffic"]
    assert sum(row["incidents"] for row in traffic["cameras"]) == sum(
        c["incident_count"] for c in traffic_cases
    )


# -- Open311 GeoReport v2 ---------------------------------------------------------------------------


def open311(city: City, method: str, path: str, **kwargs) -> httpx.Response:
    """A plain GeoReport v2 client request: no Authorization header, the api_key as a parameter."""
    with httpx.Client(base_url=city.cluster.gateway_url + "/open311/v2", timeout=30) as client:
        return client.request(method, path, **kwargs)


def test_open311_lists_the_services_and_the_cases_as_service_requests(city: City):
    key = city.tokens["js-dispatcher"]
    assert open311(city, "GET", "/services.json").status_code == 401  # like everything but health
    services = open311(city, "GET", "/services.json", params={"api_key": key})
    assert services.status_code == 200 and isinstance(services.json(), list)
    parking = next(s for s in services.json() if s["service_code"] == "05-05")
    assert (parking["service_name"], parking["group"], parking["metadata"]) == (
        "机动车乱停放",
        "街面秩序",
        False,
    )

    answer = open311(city, "GET", "/requests.json", params={"api_key": key})
    assert answer.status_code == 200
    requests = {r["service_request_id"]: r for r in answer.json()}
    kerb_id = city.case_of("kerb-1")["id"]
    kerb = requests[kerb_id]
    assert (kerb["status"], kerb["service_code"], kerb["agency_responsible"]) == (
        "open", "05-05", "jianghan-street"
    )  # fmt: skip
    assert (kerb["lat"], kerb["long"], kerb["address"]) == (30.58, 114.27, "解放大道 100 号")
    assert kerb["requested_datetime"].endswith("+00:00") and kerb["updated_datetime"]
    photo = httpx.get(kerb["media_url"], headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert set(requests) == {c["id"] for c in city.ok("js-dispatcher", "GET", "/api/v1/cases")["cases"]}
    one = open311(city, "GET", f"/requests/{kerb_id}.json", params={"api_key": key})
    assert one.status_code == 200 and [r["service_request_id"] for r in one.json()] == [kerb_id]
    closed = open311(city, "GET", "/requests.json", params={"api_key": key, "status": "closed"}).json()
    assert all(r["status"] == "closed" for r in closed)
    by_id = open311(city, "GET", "/requests.json", params={"api_key": key, "service_request_id": kerb_id})
    assert [r["service_request_id"] for r in by_id.json()] == [kerb_id]


@pytest.mark.parametrize(
    ("user", "expected"), [(None, 401), ("police-officer", 403), ("um-ops", 403), ("parks-both", 404)]
)
def test_open311_keeps_each_key_to_its_department(city: City, user, expected):
    kerb_id = city.case_of("kerb-1")["id"]
    params = {"api_key": city.tokens[user]} if user else {}
    answer = open311(city, "GET", f"/requests/{kerb_id}.json", params=params)
    assert answer.status_code == expected
    assert answer.json()[0]["code"] == expected  # a GeoReport error array
    if expected == 404:  # another department: as an unknown id, and not in its list
        unknown = open311(city, "GET", "/requests/no-such-case.json", params=params)
        assert unknown.status_code == 404
        listed_ids = [
            r["service_request_id"] for r in open311(city, "GET", "/requests.json", params=params).json()
        ]
        assert kerb_id not in listed_ids
    else:  # nor may it post
        form = {"service_code": "05-05", "lat": "30.5", "long": "114.3", **params}
        assert open311(city, "POST", "/requests.json", data=form).status_code == expected


def test_an_external_system_posts_a_problem_and_it_becomes_a_routed_case(city: City):
    form = {
        "api_key": city.tokens["um-dispatcher"], "service_code": "05-05", "lat": "30.591", "long": "114.281",
        "address_string": "中山大道 8 号", "description": "车辆占用盲道", "media_url": "https://city.example/p/1.jpg",
    }  # fmt: skip
    answer = open311(city, "POST", "/requests.json", data=form)
    assert answer.status_code == 200, answer.text
    ((created),) = answer.json()
    request_id = created["service_request_id"]
    shown = open311(
        city, "GET", f"/requests/{request_id}.json", params={"api_key": city.tokens["um-dispatcher"]}
    )
    (request,) = shown.json()
    assert (request["status"], request["agency_responsible"], request["lat"], request["long"]) == (
        "open", "traffic", 30.591, 114.281
    )  # fmt: skip
    case = city.ok("tr-dispatcher", "GET", f"/api/v1/cases/{request_id}")  # routed to traffic by 05-05
    assert case["history"][0]["details"]["source"] == "open311"
    assert case["history"][0]["details"]["description"] == "车辆占用盲道"
    bad = open311(city, "POST", "/requests.json", data={**form, "service_code": "99-99"})
    assert bad.status_code == 400 and bad.json()[0]["code"] == 400


def test_an_external_systems_retry_is_the_same_case_not_a_second_one(city: City):
    form = {"api_key": city.tokens["parks-both"], "service_code": "05-05", "lat": "30.6", "long": "114.2",
            "description": "路灯不亮，重发测试"}  # fmt: skip

    def post(data: dict) -> str:
        answer = open311(city, "POST", "/requests.json", data=data)
        assert answer.status_code == 200, answer.text
        return answer.json()[0]["service_request_id"]

    first = post(form)
    assert post(form) == first  # the client timed out and sent it again
    assert post({**form, "description": "另一处路灯不亮"}) != first  # another problem
    assert post({**form, "lat": "30.7"}) != first  # another place
    # the same form from another department's key is its own case: a retry never crosses departments
    other = post({**form, "api_key": city.tokens["um-dispatcher"]})  # (05-05 is routed to traffic)
    assert other != first
    assert city.call("um-dispatcher", "GET", f"/api/v1/cases/{first}").status_code == 404
    cases = [c["id"] for c in city.ok("parks-both", "GET", "/api/v1/cases", params={"limit": 1000})["cases"]]
    assert cases.count(first) == 1 and other not in cases
