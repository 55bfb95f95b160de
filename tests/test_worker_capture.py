"""WorkerService.CaptureFrame with real parts: a worker process analysing real footage, nats-server."""

from __future__ import annotations

import time
from pathlib import Path

import av
import cv2
import grpc
import numpy as np
import pytest
import yaml

from retina.services.cli.clients import assign_cameras, wait_until_serving
from retina.services.core.config import load_config
from retina.services.core.ports import free_port
from retina.services.core.processes import start_python, stop_process
from retina.v1 import worker_pb2, worker_pb2_grpc
from tests.conftest import MODEL, Credentials, footage, wait_for

pytestmark = pytest.mark.slow

KERB = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9], [0.1, 0.9]]  # its top edge runs along the middle row
ZONE_BGR = np.array([0, 200, 255])  # the colour zones are drawn in (services.core.incident.draw_zone)


def rejected(call, request: worker_pb2.CaptureFrameRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value.code(), info.value.details()


def test_capture_frame_returns_the_current_scene_with_the_zone_drawn(
    tmp_path: Path, nats_server, service_credentials: Credentials
):
    clip = footage("intersection.mp4")
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        size = (stream.width, stream.height)
    parking = {
        "name": "illegal_parking",
        "params": {"dwell_seconds": 60},
        "zones": [{"name": "kerb", "polygon": KERB}],
    }
    config_path = tmp_path / "cluster.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "detector": {"model": str(MODEL)},
                "nats": {"url": nats_server.url},
                "evidence": {"clip_before_seconds": 0, "clip_after_seconds": 0},
                "features": {"enabled": False},
                "ingest": {"open_timeout_seconds": 2, "backoff_initial_seconds": 1, "backoff_max_seconds": 2},
                "cameras": [
                    {"id": "cam-live", "url": str(clip), "loop": True, "algorithms": [parking]},
                    {"id": "cam-dead", "url": "rtsp://127.0.0.1:9/nothing", "algorithms": [parking]},
                ],
            }
        )
    )
    grpc_port = free_port()
    address = f"127.0.0.1:{grpc_port}"
    worker_args = [
        "worker", "--config", str(config_path), "--data-dir", str(tmp_path / "worker"),
        "--grpc-port", str(grpc_port), "--metrics-port", str(free_port()), "--worker-id", "w1",
        *service_credentials.flags("worker"),
    ]  # fmt: skip
    worker = start_python(worker_args, log_file=tmp_path / "worker.log")
    try:
        wait_until_serving(address, 120, worker)
        with service_credentials.channel(address) as channel:
            capture = worker_pb2_grpc.WorkerServiceStub(channel).CaptureFrame
            assert rejected(capture, worker_pb2.CaptureFrameRequest(camera_id="cam-live")) == (
                grpc.StatusCode.NOT_FOUND,
                "camera 'cam-live' is not assigned here",
            )
            code, details = rejected(capture, worker_pb2.CaptureFrameRequest(camera_id="../cam"))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("camera_id:")
            code, details = rejected(
                capture, worker_pb2.CaptureFrameRequest(camera_id="cam-live", zone="a\nb")
            )
            assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("zone:")

            operator = service_credentials.token("operator")
            assign_cameras(address, load_config(config_path).config.cameras, token=operator)
            code, details = rejected(capture, worker_pb2.CaptureFrameRequest(camera_id="cam-dead"))
            assert code == grpc.StatusCode.UNAVAILABLE and details.startswith(
                "camera 'cam-dead' has no frame yet"
            )
            assert rejected(
                capture, worker_pb2.CaptureFrameRequest(camera_id="cam-live", zone="nowhere")
            ) == (
                grpc.StatusCode.NOT_FOUND,
                "camera 'cam-live' has no zone 'nowhere'",
            )

            def has_frame() -> bool:
                try:
                    capture(worker_pb2.CaptureFrameRequest(camera_id="cam-live"), timeout=10)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
                    return False
                return True

            wait_for(has_frame, 60, "the worker's first frame of cam-live")
            for zone in ("", "kerb"):
                asked_at = time.time()
                frame = capture(worker_pb2.CaptureFrameRequest(camera_id="cam-live", zone=zone), timeout=10)
                image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert image is not None, "the capture is not a JPEG"
                assert (frame.width, frame.height) == size and (image.shape[1], image.shape[0]) == size
                assert abs(frame.captured_at.ToNanoseconds() / 1e9 - asked_at) < 5  # the current scene
                # The zone's top edge: drawn in the zone colour only when the zone is asked for.
                w, h = size
                edge = image[h // 2 - 1 : h // 2 + 1, int(0.3 * w) : int(0.7 * w)].reshape(-1, 3)
                distance = np.linalg.norm(np.median(edge, axis=0) - ZONE_BGR)
                assert (distance < 60) == (zone == "kerb"), (zone, np.median(edge, axis=0))
    finally:
        stop_process(worker, "worker")
