"""The shared detector (Ultralytics YOLO) and one ByteTrack tracker per camera."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from retina.algorithms.sdk.frames import TrackedObject, family_of
from retina.services.core.config import ConfigError, DetectorConfig, TrackerConfig
from retina.services.worker import metrics
from retina.services.worker.accelerate import accelerated

log = logging.getLogger(__name__)


@dataclass
class Detections:
    """Detections of one frame, in pixels."""

    xyxy: np.ndarray  # (N, 4) float32
    conf: np.ndarray  # (N,)
    cls: np.ndarray  # (N,) detector class ids

    def __len__(self) -> int:
        return len(self.conf)


class Detector:
    """One model instance; detects on a batch of frames (one call, however many cameras)."""

    def __init__(self, config: DetectorConfig, max_batch: int = 8):
        """``max_batch``: the most frames one call gets (an exported engine takes 1 to this many)."""
        model_path = config.resolved_model()
        if problem := DetectorConfig.weights_problem(model_path):
            raise ConfigError([f"detector.model: {problem}"])
        # Ultralytics logs to stdout, which `retina analyze` keeps for incident JSON lines, and
        # never installs packages behind our back.
        os.environ.setdefault("YOLO_VERBOSE", "False")
        os.environ.setdefault("YOLO_AUTOINSTALL", "False")
        from ultralytics import YOLO  # imported late: it is slow and only the worker needs it

        self.model_path, self.config = accelerated(config, max_batch)
        self.model = YOLO(self.model_path, task="detect")
        if self.model_path != model_path:  # an exported engine: load it now, the .pt if it fails
            try:
                blank = np.zeros((64, 64, 3), dtype=np.uint8)
                self.model.predict(blank, device=self.config.device, imgsz=self.config.imgsz, verbose=False)
            except Exception as exc:
                log.warning(
                    "engine %s failed to load (%s: %s); using %s at FP16",
                    self.model_path, type(exc).__name__, exc, model_path,
                    extra={"device": self.config.device},
                )  # fmt: skip
                self.model_path, self.config = model_path, self.config.model_copy(update={"half": True})
                self.model = YOLO(model_path, task="detect")
        self.names: dict[int, str] = dict(self.model.names)
        self.families = {i: family_of(n) for i, n in self.names.items()}
        self.family_index = family_index(self.names)
        log.info("detector loaded", extra={"model": self.model_path, "device": self.config.device})

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Run the detector once over a batch of BGR frames."""
        kwargs = {"conf": self.config.confidence, "device": self.config.device, "verbose": False}
        if self.config.imgsz:
            kwargs["imgsz"] = self.config.imgsz
        if self.config.half:
            kwargs["half"] = True
        started = time.perf_counter()
        results = self.model.predict(images, **kwargs)
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(images))
        out = []
        for result in results:
            boxes = result.boxes.cpu().numpy()
            detections = Detections(boxes.xyxy.astype(np.float32), boxes.conf, boxes.cls.astype(int))
            out.append(family_nms(detections, self.family_index, self.config.family_nms_iou))
        return out


def family_index(names: dict[int, str]) -> np.ndarray:
    """Class id → a number per family (``family_of``), for tracking and suppressing by family."""
    numbers = {family: n for n, family in enumerate(sorted({family_of(name) for name in names.values()}))}
    return np.array(
        [numbers[family_of(names.get(i, str(i)))] if i in names else -1 for i in range(max(names) + 1)]
    )


def family_nms(detections: Detections, family_index: np.ndarray, iou: float) -> Detections:
    """Keep one box per object within a family: the detector's NMS runs per class, so a car also
    detected as a truck arrives twice; of two boxes of one family overlapping more than ``iou``,
    the more confident stays. Boxes of different families (a person on a bicycle) never suppress
    each other. ``family_index`` maps class id → family number."""
    if len(detections) < 2 or iou >= 1:
        return detections
    import torch
    from torchvision.ops import batched_nms

    keep = batched_nms(
        torch.from_numpy(detections.xyxy),
        torch.from_numpy(np.asarray(detections.conf, dtype=np.float32)),
        torch.from_numpy(family_index[detections.cls]),
        iou,
    ).numpy()
    keep.sort()  # the detector's order
    return Detections(detections.xyxy[keep], detections.conf[keep], detections.cls[keep])


class _TrackerInput:
    """The minimal Results-like view BYTETracker.update expects (conf, cls, xywh, boolean indexing)."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray):
        self.xyxy, self.conf, self.cls = xyxy, conf, cls

    @property
    def xywh(self) -> np.ndarray:
        xywh = self.xyxy.copy()
        xywh[:, 2] = self.xyxy[:, 2] - self.xyxy[:, 0]
        xywh[:, 3] = self.xyxy[:, 3] - self.xyxy[:, 1]
        xywh[:, 0] = self.xyxy[:, 0] + xywh[:, 2] / 2
        xywh[:, 1] = self.xyxy[:, 1] + xywh[:, 3] / 2
        return xywh

    def __getitem__(self, mask: np.ndarray) -> _TrackerInput:
        return _TrackerInput(self.xyxy[mask], self.conf[mask], self.cls[mask])

    def __len__(self) -> int:
        return len(self.conf)


class CameraTracker:
    """ByteTrack for one camera. Tracks run per family, so a car seen as a truck keeps its id."""

    def __init__(self, config: TrackerConfig, analysis_fps: float, detector: Detector):
        from ultralytics.trackers.byte_tracker import BYTETracker

        args = SimpleNamespace(
            track_high_thresh=config.high_threshold,
            track_low_thresh=config.low_threshold,
            new_track_thresh=config.new_track_threshold,
            match_thresh=config.match_threshold,
            track_buffer=max(1, round(config.lost_seconds * analysis_fps)),
            fuse_score=True,
        )
        self._tracker = BYTETracker(args)
        self._names = detector.names
        self._family_of_class = detector.family_index

    def update(self, detections: Detections) -> list[TrackedObject]:
        """Feed one frame's detections; return the confirmed tracks with their original class."""
        family_cls = self._family_of_class[detections.cls] if len(detections) else detections.cls
        tracked = self._tracker.update(_TrackerInput(detections.xyxy, detections.conf, family_cls))
        objects = []
        for x1, y1, x2, y2, track_id, score, _family, idx in tracked:
            class_name = self._names[int(detections.cls[int(idx)])]
            objects.append(
                TrackedObject(
                    track_id=int(track_id),
                    family=family_of(class_name),
                    class_name=class_name,
                    confidence=float(score),
                    bbox=(float(x1), float(y1), float(x2), float(y2)),
                )
            )
        return objects
