"""One case per problem on real footage: a real worker with the real detector watches the kerb of
``intersection.mp4`` (looping) and the incident store makes the cases.

In the clip a car stands at the lower-left kerb for its first 20 s, then drives off; looping, the
same car stops at the same spot again every 30 s. Each stay is an incident (dwell 10 s), so the
car raises a new alert on every pass. The case is the problem, not the alert:

* two stays — two alert windows — of the car are **one case** with both incidents and their
  evidence, routed by the camera's grid code to the street office;
* once the case is closed, the car at the same spot again is **a new case linked to the closed
  one** as its recurrence, which the closed case counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

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

KERB = [[0.0, 0.5], [0.3, 0.5], [0.3, 1.0], [0.0, 1.0]]


@dataclass
class Kerb:
    cluster: LocalCluster
    street: httpx.Client  # a dispatcher of the street office the grid routes the cases to

    def cases(self, **params: str) -> list[dict]:
        answer = self.street.get("/api/v1/cases", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()["cases"]

    def case(self, case_id: str) -> dict:
        answer = self.street.get(f"/api/v1/cases/{case_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def kerb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kerb]:
    root = tmp_path_factory.mktemp("kerb-cases")
    camera = {
        "id": "kerb",
        "url": str(footage("intersection.mp4")),
        "loop": True,
        "grid_code": "420102001001",
        "address": "解放大道与中山大道交叉口",
        "location": {"lat": 30.58, "lon": 114.27},
        "algorithms": [
            {
                "name": "illegal_parking",
                "zones": [{"name": "kerb", "polygon": KERB}],
                "params": {"dwell_seconds": 10},
            }
        ],
    }
    cases = {
        "merge_window_seconds": 120,  # the car is away 10 s between two stays
        "routing": [{"grid_prefix": "420102", "department": "jianghan-street"}],
    }
    config = root / "retina.yaml"
    config.write_text(
        yaml.safe_dump(
            {"detector": {"model": str(MODEL)}, "cases": cases, "cameras": [camera]}, allow_unicode=True
        )
    )
    cluster = LocalCluster(config, root / "data", ClusterPorts.free(workers=1), workers=1)
    cluster.gateway_flags = ["--verify-seconds", "0"]
    try:
        cluster.start(load(str(config)).config.cameras)
        store = AccountStore(cluster.gateway_data_dir / "gateway.sqlite")
        store.add_user("li", "jianghan-street", ["dispatcher"], "a long test password")
        token = store.create_token("li", 1)[0]
        store.close()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=cluster.gateway_url, headers=headers, timeout=30) as street:
            yield Kerb(cluster, street)
    finally:
        cluster.stop()


def iou(a: dict, b: dict) -> float:
    x1, y1 = max(a["x1"], b["x1"]), max(a["y1"], b["y1"])
    x2, y2 = min(a["x2"], b["x2"]), min(a["y2"], b["y2"])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a["x2"] - a["x1"]) * (a["y2"] - a["y1"]) + (b["x2"] - b["x1"]) * (b["y2"] - b["y1"])
    return inter / (area - inter)


def test_the_same_car_twice_is_one_case_and_after_closing_a_linked_recurrence(kerb: Kerb):
    found: list[dict] = []

    def two_stays_in_one_case() -> bool:
        found[:] = [c for c in kerb.cases() if c["incident_count"] >= 2]
        return bool(found)

    wait_for(two_stays_in_one_case, 180, "the kerb car's second stay to join its case")
    (case,) = found
    assert len(kerb.cases()) == 1, "every stay of the car so far is in this one case"
    assert (case["category_code"], case["category_name"], case["camera_id"], case["zone"]) == (
        "05-05", "机动车乱停放", "kerb", "kerb"
    )  # fmt: skip
    assert (case["department"], case["routed_by"], case["grid_code"]) == (
        "jianghan-street", "grid 420102*", "420102001001"
    )  # fmt: skip

    detail = kerb.case(case["id"])
    first, second = detail["incidents"][:2]
    assert (first["link"], second["link"]) == ("opened", "same_place")
    gap = datetime.fromisoformat(second["started_at"]) - datetime.fromisoformat(first["last_seen_at"])
    assert gap.total_seconds() > 0, "two separate stays: the second began after the first was last seen"
    assert iou(first["bbox"], second["bbox"]) > 0.5, "the same car at the same spot"
    assert [h["action"] for h in detail["history"]][:2] == ["open", "merge"]
    # the evidence of both stays, through the case: the street office does not see the camera's incidents
    wait_for(lambda: kerb.case(case["id"])["incidents"][0]["snapshot_url"] is not None, 30, "the snapshot")
    photo = kerb.street.get(kerb.case(case["id"])["incidents"][0]["snapshot_url"])
    assert photo.status_code == 200
    assert cv2.imdecode(np.frombuffer(photo.content, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (480, 640)
    assert kerb.street.get(f"/api/v1/incidents/{first['id']}").status_code == 404

    closed = kerb.street.post(
        f"/api/v1/cases/{case['id']}/close", json={"reason": "resolved", "note": "warned"}
    )
    assert closed.status_code == 200, closed.text
    recurrences: list[dict] = []

    def came_back() -> bool:
        recurrences[:] = [c for c in kerb.cases() if c["recurrence_of"] == case["id"]]
        return bool(recurrences)

    wait_for(came_back, 120, "the car at the same spot again after the case was closed")
    (again,) = recurrences
    assert again["status"] == "new" and again["id"] != case["id"]
    again_first = kerb.case(again["id"])["incidents"][0]
    assert iou(again_first["bbox"], first["bbox"]) > 0.5
    earlier = kerb.case(case["id"])
    assert earlier["status"] == "closed" and earlier["recurrences"] == 1
    assert earlier["history"][-1]["action"] == "recur"
    assert earlier["history"][-1]["details"]["recurrence"] == again["id"]
    # the closed case keeps the incidents it had: nothing after closing joined it
    assert all(i["id"] != again_first["id"] for i in earlier["incidents"])
