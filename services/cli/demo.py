"""``retina demo`` (what ``make demo`` runs): the real cluster on one scene, incidents printed live.

With the shared test footage beside the checkout (``../shared``) it watches
``examples/intersection.yaml``'s camera; without it, it composes a scene from the sample image
that ships inside Ultralytics (a bus standing at a kerb, ground truth: it stands the whole time)
and uses the model in RETINA_MODEL, or Ultralytics' own yolov8n.pt download.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import grpc
import yaml

from retina.services.cli import clients
from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.cli.common import Options
from retina.services.core import bus
from retina.services.core.config import DetectorConfig, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "examples" / "intersection.yaml"
SHARED = Path(os.environ.get("RETINA_SHARED_DIR", REPO.parent / "shared"))


def compose_bus_scene(path: Path, seconds: int = 24, fps: int = 10) -> None:
    """Write a video of Ultralytics' bundled bus.jpg: a bus standing at the kerb for ``seconds``."""
    import av
    import cv2

    from retina.services.cli.scenes import ultralytics_asset

    image = cv2.imread(str(ultralytics_asset("bus.jpg")))
    image = cv2.resize(image, (540, 720))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 540, 720, "yuv420p"
        for _ in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def demo_config(data_dir: Path) -> Path:
    """The configuration the demo runs: the shared footage if present, else a composed scene."""
    if (SHARED / "videos" / "intersection.mp4").exists() and (SHARED / "models").exists():
        return EXAMPLE_CONFIG
    scene = data_dir / "bus_scene.mp4"
    compose_bus_scene(scene)
    config = {
        "detector": {"model": DetectorConfig().model_path() or "yolov8n.pt"},
        "cameras": [
            {
                "id": "cam-demo",
                "name": "Composed scene: bus at the kerb",
                "url": str(scene),
                "timezone": "Asia/Shanghai",
                "algorithms": [
                    {
                        "name": "illegal_parking",
                        "zones": [{"name": "kerb", "polygon": [[0, 0.6], [1, 0.6], [1, 0.95], [0, 0.95]]}],
                        "params": {"dwell_seconds": 8, "update_interval_seconds": 5},
                    }
                ],
            }
        ],
    }
    path = data_dir / "demo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _describe_incident(data: dict) -> str:
    line = (
        f"[incident {data['event']:6}] {data['camera_id']} {data['algorithm']} zone={data['zone']} "
        f"dwell={data['dwell_seconds']:.1f}s conf={data['confidence']:.2f} id={data['id'][:8]}"
    )
    if data.get("end_reason"):
        line += f" ({data['end_reason']})"
    return line


async def _watch(cluster: LocalCluster, config_path: Path, seconds: float) -> None:
    nc = await bus.connect(
        cluster.nats_url, "retina-demo", user="operator", password=cluster.token("operator")
    )

    async def on_incident(msg) -> None:
        print(_describe_incident(json.loads(msg.data)), flush=True)

    last_state: dict[str, str] = {}

    async def on_status(msg) -> None:
        data = json.loads(msg.data)
        if last_state.get(data["camera_id"]) == data["state"]:
            return  # a periodic heartbeat, not a change
        last_state[data["camera_id"]] = data["state"]
        print(f"[camera {data['state']:7}] {data['camera_id']}: {data['reason']}", flush=True)

    await nc.subscribe(bus.INCIDENT_SUBJECTS, cb=on_incident)
    await nc.subscribe("retina.cameras.*.status", cb=on_status)
    loaded = load_config(config_path)
    cameras = len(loaded.config.cameras)
    print(f"starting scheduler, worker, search and incident store for {cameras} camera(s)...", flush=True)
    await asyncio.to_thread(cluster.start_services, loaded.config.cameras)
    await asyncio.sleep(seconds)
    await nc.drain()


def _search_like(cluster: LocalCluster, incident) -> None:
    """What police would do next: where else did this incident's vehicle appear?"""
    try:
        reply = clients.search_by_incident(cluster.search_address, incident.id, incident.department, k=5)
    except grpc.RpcError as exc:
        print(f"\nsearch by this incident's vehicle: {exc.details()}")
        return
    print(f"\nsearch: tracks that look like incident {incident.id[:8]}'s vehicle (best first):")
    for match in reply.matches:
        print(
            f"  score={match.score:.2f} {match.camera_id} {match.class_name:10} "
            f"{','.join(match.colours) or '-':12} seen {match.first_seen.ToDatetime():%H:%M:%S}Z"
            f"–{match.last_seen.ToDatetime():%H:%M:%S}Z  track: {match.track_id}"
        )


def run_demo(data_dir: Path) -> int:
    """Start the cluster on the demo scene, print incidents as they arrive, summarise, stop."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    config_path = demo_config(data_dir.resolve())
    print(f"retina demo: config {config_path}", flush=True)
    cluster = LocalCluster(config_path, data_dir.resolve(), ClusterPorts.free())
    try:
        cluster.start_nats()
        Options.token_file = str(cluster.token_file("operator"))  # what the client calls below send
        print(f"nats-server (JetStream) on {cluster.nats_url}", flush=True)
        asyncio.run(_watch(cluster, config_path, seconds=36))
        incidents = clients.list_incidents(cluster.incidents_address, limit=20)
        media = data_dir.resolve() / "incidents" / "media"
        print(f"\nincident store now holds {len(incidents)} incident(s):")
        for incident in incidents:
            print(
                f"  {incident.camera_id} {incident.algorithm} zone={incident.zone} state={incident.state} "
                f"dwell={incident.dwell_seconds:.1f}s\n    snapshot: {media / incident.snapshot_path}"
            )
            if incident.clip_path:
                print(f"    clip:     {media / incident.clip_path}")
        if incidents:
            _search_like(cluster, incidents[0])
        return 0 if incidents else 1
    finally:
        cluster.stop()
        print(f"cluster stopped; logs in {data_dir / 'logs'}")
