"""The closed dispatch loop (分拨-处置-核查) and live events through the gateway, on real footage.

A real cluster (NATS with per-role users, incident store, search, scheduler, one worker running
the real detector, the gateway) analyses two real street clips, looping:

* ``lot`` (parking_lot.mp4): cars stay parked the whole clip, so an illegal-parking incident stays
  open: after ``handle`` the platform finds the violation still there and reopens it, with the
  camera's current frame as evidence;
* ``kerb`` (intersection.mp4): a car stands at the kerb for the first 20 s of the 30 s clip and
  then drives off, so its incident ends; handled then, the platform finds the zone clear and marks
  it verified, with the frame of the clear scene.

Live events are read as a browser does (Server-Sent Events); a client that reconnects with
``Last-Event-ID`` receives what happened while it was away, and another department never sees them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import httpx
import numpy as np
import pytest
import yaml

from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.cli.common import load
from retina.services.gateway.accounts import AccountStore
from tests.conftest import MODEL, footage, wait_for

pytestmark = pytest.mark.slow

VERIFY_SECONDS = 3
KERB = [[0.0, 0.5], [0.3, 0.5], [0.3, 1.0], [0.0, 1.0]]
WHOLE_FRAME = [[0, 0], [1, 0], [1, 1], [0, 1]]


def parking(zone: str, polygon: list, dwell_seconds: float) -> list[dict]:
    return [
        {
            "name": "illegal_parking",
            "zones": [{"name": zone, "polygon": polygon}],
            "params": {"dwell_seconds": dwell_seconds},
        }
    ]


@dataclass
class Loop:
    cluster: LocalCluster
    dispatcher: httpx.Client
    other_department: httpx.Client
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, name: str | None) -> httpx.Client:
        """A client acting as ``name`` (None: without credentials)."""
        headers = {"Authorization": f"Bearer {self.tokens[name]}"} if name else {}
        return httpx.Client(base_url=self.cluster.gateway_url, headers=headers, timeout=30)

    def incidents(self, **params: str) -> list[dict]:
        answer = self.dispatcher.get("/api/v1/incidents", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()["incidents"]

    def incident(self, incident_id: str) -> dict:
        answer = self.dispatcher.get(f"/api/v1/incidents/{incident_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    root = tmp_path_factory.mktemp("loop")
    cameras = [
        {
            "id": "lot",
            "url": str(footage("parking_lot.mp4")),
            "loop": True,
            "algorithms": parking("lot", WHOLE_FRAME, 4),
        },
        {
            "id": "kerb",
            "url": str(footage("intersection.mp4")),
            "loop": True,
            "algorithms": parking("kerb", KERB, 10),
        },
    ]
    config = root / "retina.yaml"
    config.write_text(yaml.safe_dump({"detector": {"model": str(MODEL)}, "cameras": cameras}))
    cluster = LocalCluster(config, root / "data", ClusterPorts.free(workers=1), workers=1)
    cluster.gateway_flags = ["--verify-seconds", str(VERIFY_SECONDS)]
    try:
        cluster.start(load(str(config)).config.cameras)
        store = AccountStore(cluster.gateway_data_dir / "gateway.sqlite")
        store.add_user("ana", "urban-management", ["dispatcher"], "a long test password")
        store.add_user("tom", "traffic", ["dispatcher"], "a long test password")
        store.add_user("ops-um", "urban-management", ["ops"], "a long test password")
        store.add_user("ops-traffic", "traffic", ["ops"], "a long test password")
        tokens = {name: store.create_token(name, 1)[0] for name in ("ana", "tom", "ops-um", "ops-traffic")}
        store.close()

        def client(name: str) -> httpx.Client:
            return httpx.Client(
                base_url=cluster.gateway_url, headers={"Authorization": f"Bearer {tokens[name]}"}, timeout=30
            )

        with client("ana") as ana, client("tom") as tom:
            yield Loop(cluster, ana, tom, tokens)
    finally:
        cluster.stop()


def decoded(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not an image"
    return image


def wait_for_status(loop: Loop, incident_id: str, status: str, timeout: float) -> dict:
    found: dict = {}

    def reached() -> bool:
        found.update(loop.incident(incident_id))
        return found["dispatch_status"] == status

    wait_for(
        reached, timeout, f"incident {incident_id} to become {status} (is {found.get('dispatch_status')})"
    )
    return found


def test_a_violation_still_there_after_handling_is_reopened_with_fresh_evidence(loop: Loop):
    open_ = []
    wait_for(
        lambda: bool(open_.extend(loop.incidents(camera="lot", state="open")) or open_),
        90,
        "a parking incident",
    )
    incident = open_[0]
    wait_for(lambda: loop.incident(incident["id"])["snapshot_url"] is not None, 30, "its snapshot")
    snapshot = loop.dispatcher.get(loop.incident(incident["id"])["snapshot_url"])
    assert snapshot.status_code == 200 and snapshot.headers["content-type"] == "image/jpeg"
    assert decoded(snapshot.content).shape[:2] == (480, 640)

    handled = loop.dispatcher.post(
        f"/api/v1/incidents/{incident['id']}/handle",
        data={"note": "owner told to move the car"},
        files={"photo": ("field.jpg", snapshot.content, "image/jpeg")},  # a real photo of the scene
    )
    assert handled.status_code == 200, handled.text
    assert handled.json()["dispatch_status"] == "verifying"

    reopened = wait_for_status(loop, incident["id"], "reopened", VERIFY_SECONDS + 30)
    steps = [e for e in reopened["history"] if e["kind"] == "dispatch"]
    assert [e["action"] for e in steps] == ["handle", "verify"]
    handle, verify = steps
    assert handle["actor"] == "user:ana" and handle["media_url"]
    assert verify["actor"] == "system:verifier" and verify["details"]["outcome"] == "present"
    frame = loop.dispatcher.get(verify["media_url"])  # the camera's frame when it was checked
    assert frame.status_code == 200
    assert decoded(frame.content).shape[:2] == (480, 640)
    assert frame.content != snapshot.content


def test_a_violation_gone_after_handling_is_verified_with_the_clear_scene(loop: Loop):
    ended: list[dict] = []

    def kerb_incident_ended() -> bool:
        ended[:] = [i for i in loop.incidents(camera="kerb", state="ended") if i["dispatch_status"] == "new"]
        return bool(ended)

    wait_for(kerb_incident_ended, 120, "the kerb car to drive off (its incident to end)")
    incident = ended[0]
    assert incident["end_reason"] in ("moved", "left_zone", "lost")
    handled = loop.dispatcher.post(
        f"/api/v1/incidents/{incident['id']}/handle", data={"note": "warned the driver"}
    )
    assert handled.status_code == 200, handled.text

    verified = wait_for_status(loop, incident["id"], "verified", VERIFY_SECONDS + 30)
    verify = [e for e in verified["history"] if e["kind"] == "dispatch"][-1]
    assert verify["actor"] == "system:verifier" and verify["details"]["outcome"] == "clear"
    assert decoded(loop.dispatcher.get(verify["media_url"]).content).shape[:2] == (480, 640)
    # and the dispatcher closes it out; a false alarm would be counted per camera and rule
    closed = loop.dispatcher.post(f"/api/v1/incidents/{incident['id']}/close", json={"reason": "resolved"})
    assert closed.status_code == 200 and closed.json()["dispatch_status"] == "closed"


def test_ops_get_their_cameras_current_frame_for_the_zone_editor(loop: Loop):
    with loop.client("ops-um") as ops:
        frames: list[httpx.Response] = []

        def framed() -> bool:
            frames[:] = [ops.get("/api/v1/cameras/lot/frame")]
            assert frames[0].status_code in (200, 503), frames[0].text  # 503 until the first frame
            return frames[0].status_code == 200

        wait_for(framed, 60, "the camera's first frame")
        first = frames[0]
        assert first.headers["content-type"] == "image/jpeg"
        assert decoded(first.content).shape[:2] == (480, 640)
        assert first.headers["x-retina-redacted"].startswith("heads=")  # ops see the scene, redacted
        time.sleep(1.5)
        later = ops.get("/api/v1/cameras/lot/frame")
        assert later.status_code == 200 and later.content != first.content  # the latest frame, each time
    store = AccountStore(loop.cluster.gateway_data_dir / "gateway.sqlite")
    store.add_user("admin-um", "urban-management", ["admin"], "a long test password")
    loop.tokens["admin-um"] = store.create_token("admin-um", 1)[0]
    store.close()
    with loop.client("admin-um") as admin:
        original = admin.get("/api/v1/cameras/lot/frame")
        assert original.status_code == 200 and "x-retina-redacted" not in original.headers
        assert decoded(original.content).shape[:2] == (480, 640)
    assert loop.dispatcher.get("/api/v1/cameras/lot/frame").status_code == 403  # not ops
    with loop.client("ops-traffic") as outsider, loop.client(None) as anonymous:
        refused = outsider.get("/api/v1/cameras/lot/frame")  # urban-management's, not shared
        unknown = outsider.get("/api/v1/cameras/no-such-camera/frame")
        assert (refused.status_code, unknown.status_code) == (404, 404)
        assert refused.json()["detail"].replace("lot", "X") == unknown.json()["detail"].replace(
            "no-such-camera", "X"
        )
        assert anonymous.get("/api/v1/cameras/lot/frame").status_code == 401
    store = AccountStore(loop.cluster.gateway_data_dir / "gateway.sqlite")
    viewed = [e for e in store.audit_entries(action="media.view") if e.details.get("kind") == "frame"]
    store.close()
    seen = sorted((e.actor, e.target, e.details["original"]) for e in viewed)
    assert seen == [("admin-um", "lot", True), ("ops-um", "lot", False), ("ops-um", "lot", False)]
    assert all("heads" in e.details["redacted"] for e in viewed if not e.details["original"])


@dataclass
class EventReader:
    """Reads ``GET /api/v1/events`` in a thread, as a browser's EventSource does."""

    client: httpx.Client
    last_event_id: str | None = None
    events: list[dict] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> EventReader:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.opened.wait(15), "the event stream did not open"
        return self

    def _run(self) -> None:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        with self.client.stream("GET", "/api/v1/events", headers=headers, timeout=None) as response:
            assert response.status_code == 200
            self.opened.set()
            event: dict = {}
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("id: "):
                    event["id"] = line[4:]
                elif line.startswith("event: "):
                    event["event"] = line[7:]
                elif line.startswith("data: "):
                    event["data"] = json.loads(line[6:])
                elif not line and "data" in event:
                    self.events.append(event)
                    self.ids.append(event["id"])
                    event = {}

    def stop(self) -> None:
        self._stop.set()


def test_live_events_resume_after_a_disconnect_and_stay_in_scope(loop: Loop):
    incidents = loop.incidents(camera="lot")
    wait_for(lambda: bool(incidents or incidents.extend(loop.incidents(camera="lot"))), 90, "an incident")
    target = incidents[0]["id"]

    first = EventReader(loop.dispatcher).start()
    outsider = EventReader(loop.other_department).start()
    assign = f"/api/v1/incidents/{target}/assign"
    assert loop.dispatcher.post(assign, json={"assignee": "team 1"}).status_code == 200
    wait_for(lambda: any(e["event"] == "dispatch" for e in first.events), 15, "the first assign event")
    first.stop()
    resume_from = first.ids[-1]

    # while the client is away: two more steps
    assert loop.dispatcher.post(assign, json={"assignee": "team 2"}).status_code == 200
    assert loop.dispatcher.post(assign, json={"assignee": "team 3"}).status_code == 200

    resumed = EventReader(loop.dispatcher, last_event_id=resume_from).start()

    def assignees() -> list[str]:
        return [
            e["data"]["details"].get("assignee")
            for e in resumed.events
            if e["event"] == "dispatch" and e["data"]["incident_id"] == target
        ]

    wait_for(lambda: assignees()[:2] == ["team 2", "team 3"], 15, "the steps taken while disconnected")
    resumed.stop()
    # every id after the resume point, in order, none repeated from before it
    seen = [tuple(map(int, i.split(":"))) for i in resumed.ids]
    start = tuple(map(int, resume_from.split(":")))
    assert all(s > start for s in seen) and seen == sorted(seen)
    time.sleep(1)
    outsider.stop()
    assert outsider.events == [], "traffic received urban-management's events"
