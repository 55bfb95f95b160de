"""Scale-in without waiting for a lease: a worker stopped with SIGTERM (Kubernetes scaling a
StatefulSet down, draining a node, rolling an update) leaves through ``DrainWorker``. Its cameras
are on the other worker within a couple of seconds — the lease here is 30 s — and their open
incidents continue there under the same ids, none ended and none opened twice. Real processes: NATS,
incident store, scheduler and two workers running the detector."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import grpc
import pytest
import yaml

from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.cli.demo import compose_bus_scene
from retina.services.core import service_auth
from retina.services.core.config import load_config
from retina.v1 import scheduler_pb2, scheduler_pb2_grpc
from tests.conftest import MODEL, wait_for
from tests.test_scheduler import PARKING, analysed, cluster_status, iou, placed, stored_events

pytestmark = pytest.mark.slow

LEASE_SECONDS = 30


def open_incidents(events: list[tuple[str, str, str, int, str]], camera_id: str) -> dict[str, dict]:
    """Incident id → bounding box of the camera's incidents that have not ended."""
    ended = {e[0] for e in events if e[2] == "end"}
    return {e[0]: json.loads(e[4]) for e in events if e[1] == camera_id and e[0] not in ended}


def test_a_stopping_worker_hands_its_cameras_over_at_once(tmp_path: Path, model_path: Path):
    scene = tmp_path / "kerb.mp4"
    compose_bus_scene(scene, seconds=20, fps=5)
    config_path = tmp_path / "cluster.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "detector": {"model": str(MODEL)},
                "evidence": {"clip_before_seconds": 0, "clip_after_seconds": 0},
                "features": {"enabled": False},
                "worker": {"capacity_fps": 20},
                "scheduler": {"heartbeat_seconds": 1, "lease_seconds": LEASE_SECONDS},
                "cameras": [
                    {"id": "cam-a", "url": str(scene), "loop": True, "algorithms": PARKING},
                    {"id": "cam-b", "url": str(scene), "loop": True, "algorithms": PARKING},
                ],
            }
        )
    )
    cameras = load_config(config_path).config.cameras
    cluster = LocalCluster(config_path, tmp_path / "var", ClusterPorts.free(workers=2), workers=2)
    db = tmp_path / "var" / "incidents" / "incidents.sqlite"
    try:
        cluster.start(cameras)
        wait_for(lambda: set(placed(cluster)) == {"cam-a", "cam-b"}, 60, "both cameras placed")
        assert len({worker for worker, _ in placed(cluster).values()}) == 2, "one camera on each worker"
        wait_for(lambda: open_incidents(stored_events(db), "cam-a"), 90, "an open incident on cam-a")

        leaving, _ = placed(cluster)["cam-a"]
        staying = "worker-2" if leaving == "worker-1" else "worker-1"
        events_before = stored_events(db)
        open_before = open_incidents(events_before, "cam-a")
        revisions = {i: max(e[3] for e in events_before if e[0] == i) for i in open_before}

        exit_code: list[int | None] = []
        stopping = threading.Thread(target=lambda: exit_code.append(cluster.stop_child(leaving)))
        signalled = time.monotonic()
        stopping.start()  # SIGTERM, then waits for the process to exit
        wait_for(lambda: placed(cluster).get("cam-a", ("",))[0] == staying, 10, "cam-a on the other worker")
        moved_after = time.monotonic() - signalled
        wait_for(lambda: analysed(cluster, "cam-a") > 0, 20, "cam-a analysed on the other worker")
        stopping.join(60)
        assert exit_code == [0], f"{leaving} did not stop cleanly: {exit_code}"
        assert moved_after < 5, f"cam-a moved {moved_after:.1f} s after SIGTERM (lease: {LEASE_SECONDS} s)"

        status = cluster_status(cluster)
        assert [w.worker_id for w in status.workers] == [staying], "the leaving worker is forgotten at once"
        assert {a.camera_id: a.worker_id for a in status.assignments} == {"cam-a": staying, "cam-b": staying}

        # Its open incidents continue on the other worker under the same ids: the next event of
        # each is a later revision, none of them ended on the way, and no new incident repeats one.
        wait_for(
            lambda: all(
                any(e[0] == i and e[3] > revisions[i] for e in stored_events(db)) for i in open_before
            ),
            60,
            "the open incidents of cam-a to continue on the other worker",
        )
        after = stored_events(db)[len(events_before) :]
        assert not [e for e in after if e[0] in open_before and e[2] == "end"], "an incident ended on drain"
        for _, _, _, _, box in (e for e in after if e[1] == "cam-a" and e[2] == "new"):
            assert all(iou(json.loads(box), old) < 0.5 for old in open_before.values()), "duplicate incident"

        # The scheduler no longer knows the worker: a second DrainWorker for it is NOT_FOUND.
        with service_auth.channel(cluster.scheduler_address, cluster.token("worker")) as channel:
            with pytest.raises(grpc.RpcError) as unknown:
                scheduler_pb2_grpc.SchedulerServiceStub(channel).DrainWorker(
                    scheduler_pb2.DrainWorkerRequest(worker_id=leaving), timeout=5
                )
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        cluster.stop()
    scheduler_log = (tmp_path / "var" / "logs" / "scheduler.log").read_text()
    assert "worker drained" in scheduler_log and "lease expired" not in scheduler_log
    assert "Traceback" not in scheduler_log
    worker_log = (tmp_path / "var" / "logs" / f"{leaving}.log").read_text()
    assert "left the scheduler" in worker_log
