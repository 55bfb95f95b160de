"""A worker's devices: one detector instance and one analysis loop per device ("lane").

Each GPU is a lane (``cuda:N``); a node without a GPU runs ``cpu_lanes`` CPU lanes with the same
code. Cameras are placed on a lane by the scheduler; frames of the cameras on one lane are batched
into one detector call (dynamic batching, up to ``max_batch`` frames, waiting at most
``max_batch_wait_ms`` for the slower streams).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina.algorithms.sdk import HandedOverIncident
from retina.services.core.config import CameraConfig, DetectorConfig, RetinaConfig
from retina.services.worker.detector import Detector
from retina.services.worker.features import FeatureExtractor
from retina.services.worker.ingest import CameraHealth, QualityCallback, SampledFrame, StatusCallback
from retina.services.worker.pipeline import Analyzer, EventsCallback
from retina.services.worker.quality import QualityMonitor, QualityReport, Reference

log = logging.getLogger(__name__)

DECODE_MEGAPIXEL_FPS_PER_CORE = 300.0  # PyAV decodes 720p at about 700 fps per core here
BATCH_GAIN = 0.9  # calibrate_batch takes a larger batch when its time per frame is at most this share


def resolve_devices(config: RetinaConfig) -> list[str]:
    """The device ids this worker drives ('auto': every visible CUDA GPU, else CPU lanes)."""
    if config.worker.devices != "auto":
        return list(config.worker.devices)
    try:
        import torch

        gpus = torch.cuda.device_count()
    except Exception:  # torch without CUDA support
        gpus = 0
    if gpus:
        return [f"cuda:{i}" for i in range(gpus)]
    return [f"cpu:{i}" for i in range(config.worker.cpu_lanes)]


def detector_config_for(base: DetectorConfig, device_id: str) -> DetectorConfig:
    """The detector settings of one lane: its device, and half precision on a GPU with a .pt model."""
    if device_id.startswith("cpu"):
        return base.model_copy(update={"device": "cpu", "half": False})
    half = base.half or base.resolved_model().endswith(".pt")
    return base.model_copy(update={"device": device_id, "half": half})


def model_key(config: DetectorConfig) -> str:
    """How capacities are keyed: the model file and its inference size."""
    return f"{Path(config.resolved_model()).name}@{config.imgsz or 'default'}"


def calibrate(detector: Detector, batch: int, seconds: float) -> float:
    """Detector frames per second on this device, measured on synthetic frames in full batches."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(batch)]
    detector.detect(frames[:1])  # warm-up (lazy initialisation, kernels)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or done == 0:
        detector.detect(frames)
        done += len(frames)
    return done / (time.perf_counter() - started)


def calibrate_batch(detector: Detector, max_batch: int, seconds: float) -> int:
    """The batch size for this device: each of 1, 2, 4, ... up to ``max_batch`` is timed (``seconds`` in
    all); a larger size is chosen only when its time per frame is at most ``BATCH_GAIN`` of the size
    chosen so far (a larger batch adds latency, so it must pay)."""
    sizes = [1]
    while sizes[-1] * 2 <= max_batch:
        sizes.append(sizes[-1] * 2)
    cost = {size: 1 / calibrate(detector, size, seconds / len(sizes)) for size in sizes}
    best = 1
    for size in sizes[1:]:
        if cost[size] <= cost[best] * BATCH_GAIN:
            best = size
    return best


@dataclass
class Lane:
    device_id: str
    detector: Detector
    analyzer: Analyzer
    capacity_fps: float = 0.0
    thread: threading.Thread | None = None


class DeviceLanes:
    """The lanes of one worker and which camera runs on which."""

    def __init__(
        self,
        config: RetinaConfig,
        on_events: EventsCallback,
        on_status: StatusCallback,
        features: FeatureExtractor | None,
        on_quality: QualityCallback | None = None,
    ):
        self.config = config
        self.model_key = model_key(config.detector)
        self.lanes: dict[str, Lane] = {}
        for device_id in resolve_devices(config):
            detector = Detector(detector_config_for(config.detector, device_id), config.worker.max_batch)
            analyzer = Analyzer(
                detector,
                config.tracker,
                config.ingest,
                on_events=on_events,
                on_status=on_status,
                realtime=True,
                retry_files=True,
                max_batch=config.worker.max_batch,
                max_wait_seconds=config.worker.max_batch_wait_ms / 1000,
                evidence=config.evidence,
                features=features,
                features_config=config.features,
                plates=config.plates,
                quality=config.quality,
                on_quality=on_quality,
                motion=config.motion,
            )
            self.lanes[device_id] = Lane(device_id, detector, analyzer)
        self._camera_lane: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def decode_capacity(self) -> float:
        configured = self.config.worker.decode_capacity
        return configured or DECODE_MEGAPIXEL_FPS_PER_CORE * (os.cpu_count() or 1)

    def calibrate(self) -> None:
        """Measure each lane's detector throughput (reported to the scheduler as its capacity) and, with
        ``worker.calibrate_batch``, its batch size first."""
        worker = self.config.worker
        for lane in self.lanes.values():
            if worker.calibrate_batch:
                lane.analyzer.max_batch = calibrate_batch(
                    lane.detector, worker.max_batch, worker.calibration_seconds
                )
            lane.capacity_fps = worker.capacity_fps or calibrate(
                lane.detector, lane.analyzer.max_batch, worker.calibration_seconds
            )
            log.info(
                "device calibrated",
                extra={
                    "device_id": lane.device_id,
                    "capacity_fps": round(lane.capacity_fps, 1),
                    "max_batch": lane.analyzer.max_batch,
                },
            )

    def start(self, stop: threading.Event) -> None:
        for lane in self.lanes.values():
            lane.thread = threading.Thread(
                target=lane.analyzer.run, args=(stop,), name=f"analysis-{lane.device_id}"
            )
            lane.thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for lane in self.lanes.values():
            if lane.thread is not None:
                lane.thread.join(max(0.0, deadline - time.monotonic()))

    def lane_of(self, camera_id: str) -> Lane | None:
        with self._lock:
            device_id = self._camera_lane.get(camera_id)
        return self.lanes.get(device_id) if device_id else None

    def assign(
        self,
        camera: CameraConfig,
        device_id: str = "",
        resume: list[HandedOverIncident] | None = None,
        reference: Reference | None = None,
    ) -> CameraHealth:
        """Start (or reconfigure) a camera on a device; a camera moving between devices keeps its
        open incidents and its reference view."""
        device_id = device_id or next(iter(self.lanes))
        if device_id not in self.lanes:
            have = ", ".join(self.lanes)
            raise KeyError(f"device_id: this worker has no device {device_id!r} (it has {have})")
        resume = list(resume or [])
        current = self.lane_of(camera.id)
        if current is not None and current.device_id != device_id:
            monitor = current.analyzer.quality_monitor(camera.id)
            if reference is None and monitor is not None:
                reference = monitor.reference
            resume += current.analyzer.release(camera.id, handover=True) or []
        with self._lock:
            self._camera_lane[camera.id] = device_id
        return self.lanes[device_id].analyzer.assign(camera, resume, reference)

    def release(self, camera_id: str, handover: bool) -> list[HandedOverIncident] | None:
        """Stop a camera (see Analyzer.release); None if it is not on this worker."""
        lane = self.lane_of(camera_id)
        if lane is None:
            return None
        with self._lock:
            self._camera_lane.pop(camera_id, None)
        return lane.analyzer.release(camera_id, handover=handover)

    def release_all(self, reason: str, handover: bool = False) -> None:
        """Stop every camera on every lane together (shutdown); see Analyzer.release_all."""
        threads = [
            threading.Thread(target=lane.analyzer.release_all, args=(reason,), kwargs={"handover": handover})
            for lane in self.lanes.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def request_clip(self, camera_id: str, incident_id: str, around: float, on_ready) -> None:
        lane = self.lane_of(camera_id) or next(iter(self.lanes.values()))
        lane.analyzer.request_clip(camera_id, incident_id, around, on_ready)

    def latest_frame(self, camera_id: str) -> tuple[CameraConfig, SampledFrame | None] | None:
        """A camera's configuration and newest frame (see Analyzer.latest_frame); None if not here."""
        lane = self.lane_of(camera_id)
        return lane.analyzer.latest_frame(camera_id) if lane is not None else None

    def quality_monitor(self, camera_id: str) -> QualityMonitor | None:
        """A camera's quality monitor (see Analyzer.quality_monitor); None if not here or none."""
        lane = self.lane_of(camera_id)
        return lane.analyzer.quality_monitor(camera_id) if lane is not None else None

    def quality_reports(self) -> dict[str, QualityReport]:
        """Every camera's video quality (those with a quality monitor)."""
        out: dict[str, QualityReport] = {}
        for lane in self.lanes.values():
            out.update(lane.analyzer.quality_reports())
        return out

    def health(self) -> dict[str, tuple[str, CameraHealth]]:
        """Every camera's (device id, health)."""
        out = {}
        for lane in self.lanes.values():
            for camera_id, health in lane.analyzer.health().items():
                out[camera_id] = (lane.device_id, health)
        return out

    def frames_analysed(self) -> dict[str, int]:
        """Frames analysed so far, per device."""
        return {device_id: lane.analyzer.frames_analysed for device_id, lane in self.lanes.items()}
