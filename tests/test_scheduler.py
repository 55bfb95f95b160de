"""The cluster with a scheduler: two real workers, kill -9 failover, cameras added and removed at run
time, a scheduler restart, and bad input from a worker or a camera."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sqlite3
import time
from pathlib import Path

import grpc
import nats
import pytest
import yaml

from retina.services.cli.clients import wait_until_serving
from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.cli.demo import compose_bus_scene
from retina.services.core import bus, service_auth
from retina.services.core.config import load_config
from retina.services.core.convert import camera_to_proto
from retina.v1 import (
    registry_pb2,
    registry_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    worker_pb2,
    worker_pb2_grpc,
)
from tests.conftest import MODEL, wait_for

pytestmark = pytest.mark.slow

WHOLE_FRAME = [[0, 0], [1, 0], [1, 1], [0, 1]]
PARKING = [
    {
        "name": "illegal_parking",
        "zones": [{"name": "all", "polygon": WHOLE_FRAME}],
        "params": {"dwell_seconds": 3, "update_interval_seconds": 2},
    }
]


def cluster_status(cluster: LocalCluster) -> scheduler_pb2.ClusterStatus:
    with service_auth.channel(cluster.scheduler_address, cluster.token("operator")) as channel:
        return scheduler_pb2_grpc.SchedulerServiceStub(channel).GetClusterStatus(
            scheduler_pb2.GetClusterStatusRequest(), timeout=5
        )


def placed(cluster: LocalCluster) -> dict[str, tuple[str, str]]:
    """camera → (worker, device), as the scheduler has it."""
    return {a.camera_id: (a.worker_id, a.device_id) for a in cluster_status(cluster).assignments}


def analysed(cluster: LocalCluster, camera_id: str) -> int:
    """Frames of a camera analysed, as its worker last reported (0 if not running)."""
    for a in cluster_status(cluster).assignments:
        if a.camera_id == camera_id and a.HasField("health"):
            return a.health.frames_analysed
    return 0


def stored_events(db: Path) -> list[tuple[str, str, str, int, str]]:
    """(incident id, camera, event, revision, bbox json) of every stored event, in store order."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT e.incident_id, i.camera_id, e.event, e.revision, i.message_json"
            " FROM incident_events e JOIN incidents i ON i.id = e.incident_id ORDER BY e.rowid"
        ).fetchall()
    return [
        (i, camera, event, rev, json.dumps(json.loads(body)["bbox"])) for i, camera, event, rev, body in rows
    ]


def stream_msg_ids(cluster: LocalCluster) -> list[str]:
    async def read() -> list[str]:
        nc = await nats.connect(cluster.nats_url, user="operator", password=cluster.token("operator"))
        js = nc.jetstream()
        info = await js.stream_info(bus.INCIDENT_STREAM)
        ids = [
            (await js.get_msg(bus.INCIDENT_STREAM, seq)).headers["Nats-Msg-Id"]
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
        await nc.close()
        return ids

    return asyncio.run(read())


def iou(a: dict, b: dict) -> float:
    ix = max(0.0, min(a["x2"], b["x2"]) - max(a["x1"], b["x1"]))
    iy = max(0.0, min(a["y2"], b["y2"]) - max(a["y1"], b["y1"]))
    union = (a["x2"] - a["x1"]) * (a["y2"] - a["y1"]) + (b["x2"] - b["x1"]) * (b["y2"] - b["y1"]) - ix * iy
    return ix * iy / union if union else 0.0


def test_failover_runtime_changes_and_scheduler_restart(tmp_path: Path, model_path: Path):
    # A fixed camera on a kerb where a bus stands (Ultralytics' bus.jpg): every worker sees the same
    # stationary vehicle at the same place, so an incident must continue, not open twice.
    lot = tmp_path / "kerb.mp4"
    compose_bus_scene(lot, seconds=20, fps=5)
    config_path = tmp_path / "cluster.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "detector": {"model": str(MODEL)},
                "ingest": {"stall_seconds": 4, "open_timeout_seconds": 4, "backoff_max_seconds": 2},
                "evidence": {"clip_before_seconds": 0, "clip_after_seconds": 0},
                "features": {"enabled": False},
                "worker": {"capacity_fps": 20},  # measured at start otherwise; pinned: CPU share varies here
                "scheduler": {"heartbeat_seconds": 1, "lease_seconds": 4},
                "cameras": [
                    {"id": "cam-a", "url": str(lot), "loop": True, "algorithms": PARKING},
                    {"id": "cam-b", "url": str(lot), "loop": True, "algorithms": PARKING},
                    {"id": "cam-dead", "url": "rtsp://127.0.0.1:9/nothing", "algorithms": PARKING},
                ],
            }
        )
    )
    cameras = load_config(config_path).config.cameras
    cluster = LocalCluster(config_path, tmp_path / "var", ClusterPorts.free(workers=2), workers=2)
    scheduler = cluster.scheduler_address
    db = tmp_path / "var" / "incidents" / "incidents.sqlite"
    try:
        cluster.start(cameras)
        wait_for(
            lambda: set(placed(cluster)) == {"cam-a", "cam-b", "cam-dead"},
            60,
            f"all cameras placed (unplaced: {dict(cluster_status(cluster).unplaced)})",
        )
        wait_for(lambda: analysed(cluster, "cam-a") > 4 and analysed(cluster, "cam-b") > 4, 60, "analysis")
        status = cluster_status(cluster)
        assert {w.worker_id for w in status.workers} == {"worker-1", "worker-2"}
        assert len({worker for worker, _ in placed(cluster).values()}) == 2, "load is spread over both"
        dead = next(a for a in status.assignments if a.camera_id == "cam-dead")
        assert "cannot open rtsp://127.0.0.1:9/nothing" in dead.health.reason  # and the others run
        placed_at = [a.since.ToSeconds() for a in status.assignments]
        assert all(0 < time.time() - at < 300 for at in placed_at), "each assignment says since when"

        # A worker reporting bad capacity data is told so; it gets nothing and disturbs nothing.
        with service_auth.channel(scheduler, cluster.token("worker")) as channel:
            stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
            reply = stub.RegisterWorker(
                scheduler_pb2.RegisterWorkerRequest(
                    worker_id="worker-bad", address="127.0.0.1:9", decode_capacity=100, model_key="m",
                    devices=[scheduler_pb2.Device(device_id="cuda:0", capacity_fps={"m": math.nan})],
                ),
                timeout=5,
            )  # fmt: skip
            assert reply.ignored and "capacity_fps" in reply.ignored[0] and "nan" in reply.ignored[0]
            with pytest.raises(grpc.RpcError) as bad:
                stub.RegisterWorker(
                    scheduler_pb2.RegisterWorkerRequest(
                        worker_id="worker-neg", address="x:1", decode_capacity=-1
                    ),
                    timeout=5,
                )
            assert (
                bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                and "decode_capacity" in bad.value.details()
            )
        before_bad = placed(cluster)
        time.sleep(2)
        assert {w for w, _ in placed(cluster).values()} <= {"worker-1", "worker-2"}
        assert placed(cluster) == before_bad

        # Wait for an open incident on cam-a, then kill -9 the worker analysing it.
        wait_for(
            lambda: any(e[1] == "cam-a" and e[2] == "new" for e in stored_events(db)),
            60,
            "an incident on cam-a",
        )
        victim, _ = placed(cluster)["cam-a"]
        survivor = "worker-2" if victim == "worker-1" else "worker-1"
        events_before = stored_events(db)
        open_before = (
            {e[0]: json.loads(e[4]) for e in events_before if e[1] == "cam-a"} if events_before else {}
        )
        ended = {e[0] for e in events_before if e[2] == "end"}
        open_before = {k: v for k, v in open_before.items() if k not in ended}
        assert open_before, "cam-a had no open incident when its worker was killed"
        os.kill(cluster.processes[victim].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            lambda: placed(cluster).get("cam-a", ("",))[0] == survivor and analysed(cluster, "cam-a") > 0,
            15,
            "cam-a to resume on the surviving worker",
        )
        resumed_after = time.monotonic() - killed_at
        assert resumed_after <= 10, f"cam-a resumed after {resumed_after:.1f} s"
        assert {w for w, _ in placed(cluster).values()} == {survivor}

        # The incidents open at the kill continue under their ids on the survivor; none is duplicated.
        wait_for(
            lambda: all(
                any(e[0] == incident_id and e[3] > max(b[3] for b in events_before if b[0] == incident_id)
                    for e in stored_events(db))
                for incident_id in open_before
            ),
            40,
            "the open incidents to continue on the surviving worker",
        )  # fmt: skip
        after = stored_events(db)[len(events_before) :]
        new_on_a = [e for e in after if e[1] == "cam-a" and e[2] == "new"]
        for _, _, _, _, box in new_on_a:
            assert all(iou(json.loads(box), old) < 0.5 for old in open_before.values()), "duplicate incident"
        ids = stream_msg_ids(cluster)
        assert len(ids) == len(set(ids)), "an event was published twice"
        wait_for(lambda: len(stored_events(db)) >= len(ids), 30, "the store to hold every published event")

        # A camera added at run time through gRPC is analysed; deleted, it stops.
        extra = cameras[0].model_copy(update={"id": "cam-new"})
        with service_auth.channel(scheduler, cluster.token("operator")) as channel:
            registry = registry_pb2_grpc.RegistryServiceStub(channel)
            registry.CreateCamera(registry_pb2.CreateCameraRequest(camera=camera_to_proto(extra)), timeout=5)
            took = wait_for(lambda: analysed(cluster, "cam-new") > 0, 30, "the new camera to be analysed")
            assert took < 15
            registry.DeleteCamera(registry_pb2.DeleteCameraRequest(camera_id="cam-new"), timeout=5)
            wait_for(lambda: "cam-new" not in placed(cluster), 10, "the deleted camera to be released")
        worker_status = cluster.worker_address_of(int(survivor[-1]) - 1)
        with service_auth.channel(worker_status, cluster.token("operator")) as channel:
            running = {
                c.camera_id
                for c in worker_pb2_grpc.WorkerServiceStub(channel)
                .GetStatus(worker_pb2.GetStatusRequest(), timeout=5)
                .cameras
            }
        assert "cam-new" not in running and "cam-a" in running

        # Restart the scheduler: workers keep analysing meanwhile; assignments are kept.
        kept = placed(cluster)
        assert cluster.stop_child("scheduler") == 0
        with service_auth.channel(worker_status, cluster.token("operator")) as channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)

            def frames() -> int:
                cams = stub.GetStatus(worker_pb2.GetStatusRequest(), timeout=5).cameras
                return sum(c.frames_analysed for c in cams)

            during = frames()
            time.sleep(3)
            assert frames() > during, "workers must keep analysing while the scheduler is down"
        cluster.start_scheduler()
        wait_until_serving(scheduler, 60, cluster.processes["scheduler"])
        wait_for(lambda: placed(cluster) == kept, 15, "the same assignments after the restart")
        time.sleep(3)
        assert placed(cluster) == kept
        assert all(w.alive for w in cluster_status(cluster).workers if w.worker_id == survivor)
    finally:
        cluster.stop()
    log = (tmp_path / "var" / "logs" / "scheduler.log").read_text()
    assert "worker lease expired" in log and "Traceback" not in log
