"""The motion gate: run the detector on a camera's frame only when its picture changed.

Most city cameras watch scenes where nothing moves most of the time, and the detector is the CPU's
bottleneck. Each camera's gate compares a sampled frame (shrunk to ``width`` pixels, grey, lightly
blurred) with the frame the detector last saw: the share of the watched region's pixels whose grey
level changed by more than ``pixel_delta`` is the frame's motion score. At or above ``threshold``
the frame goes to the detector; below it, the frame is analysed with the detections of the last
frame the detector saw, which still describe it (nothing changed since). The detector also runs at
least every ``1 / floor_fps`` seconds, so what stands in a still scene is re-checked.

Why re-use detections rather than skip the frame: the tracker and the rules still see every frame
at the analysis rate, so a parked car's track neither ages nor is lost (ByteTrack counts frames),
its stay's dwell is measured on the same clock and an incident opens on the same frame as without
the gate. Comparing with the frame the detector last saw (not the previous frame) means slow changes
add up until they are detected, and re-used boxes never lag a change the gate could see.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from retina.algorithms.sdk import AlgorithmSpec
from retina.services.core.motion_config import MotionConfig
from retina.services.worker import metrics
from retina.services.worker.detector import Detections

log = logging.getLogger(__name__)

ZONE_MARGIN = 1 / 16  # in region "zones", motion this share of the frame's width beside a zone counts


class MotionGate:
    """One camera's gate: :meth:`needs_detection` on each sampled frame, then :meth:`detected` with
    the detector's result on the frames it sent (or :attr:`detections` on the others)."""

    def __init__(self, camera_id: str, config: MotionConfig, zones: list[AlgorithmSpec] | None = None):
        self.camera_id = camera_id
        self.config = config
        self._specs = zones or []
        self._reference: np.ndarray | None = None  # the small grey picture the detector last saw
        self._reference_at = float("-inf")
        self._mask: np.ndarray | None = None  # region "zones": the watched pixels
        self._mask_pixels = 0
        self._mask_shape: tuple[int, ...] = ()  # the picture size the mask was drawn for
        self._pending: np.ndarray | None = None  # the frame just sent to the detector
        self.detections: Detections | None = None  # the detector's result on the reference
        self.score = 1.0  # the last frame's motion score
        self.skipped = 0
        self._skipped_metric = metrics.FRAMES_SKIPPED.labels(camera_id)
        self._detected_metric = {
            reason: metrics.FRAMES_DETECTED.labels(camera_id, reason)
            for reason in ("motion", "floor", "first")
        }
        log.info(
            "motion gate on",
            extra={"camera_id": camera_id, **config.model_dump(include={"threshold", "floor_fps", "region"})},
        )

    def needs_detection(self, image: np.ndarray, timestamp: float) -> bool:
        """Whether this frame goes to the detector; False means: analyse it with :attr:`detections`."""
        small = self._shrink(image)
        self._pending = small
        if self._reference is None or self.detections is None or small.shape != self._reference.shape:
            return self._detect("first")
        if timestamp - self._reference_at >= 1.0 / self.config.floor_fps - 1e-3:
            return self._detect("floor")
        changed = cv2.absdiff(small, self._reference) > self.config.pixel_delta
        if self._mask is not None:
            self.score = float(np.count_nonzero(changed & self._mask)) / max(1, self._mask_pixels)
        else:
            self.score = float(np.count_nonzero(changed)) / changed.size
        metrics.MOTION_SCORE.labels(self.camera_id).set(self.score)
        if self.score >= self.config.threshold:
            return self._detect("motion")
        self.skipped += 1
        self._skipped_metric.inc()
        return False

    def detected(self, timestamp: float, detections: Detections) -> None:
        """The detector's result on the frame :meth:`needs_detection` last sent: the new reference."""
        if self._pending is None:
            return
        self._reference, self._pending = self._pending, None
        self._reference_at = timestamp
        self.detections = detections

    def _detect(self, reason: str) -> bool:
        self._detected_metric[reason].inc()
        return True

    def _shrink(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        width = min(self.config.width, w)
        height = max(1, round(h * width / w))
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        small = cv2.GaussianBlur(cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA), (3, 3), 0)
        if self.config.region == "zones" and self._mask_shape != small.shape:
            self._mask, self._mask_shape = zone_mask(self._specs, width, height), small.shape
            self._mask_pixels = int(np.count_nonzero(self._mask)) if self._mask is not None else 0
        return small


def zone_mask(specs: list[AlgorithmSpec], width: int, height: int) -> np.ndarray | None:
    """The pixels in or within ``ZONE_MARGIN`` of any rule zone; None (the whole frame) without zones."""
    polygons = [zone.polygon for spec in specs for zone in spec.zones]
    if not polygons:
        return None
    mask = np.zeros((height, width), dtype=np.uint8)
    for polygon in polygons:
        points = np.array([[x * (width - 1), y * (height - 1)] for x, y in polygon], dtype=np.int32)
        cv2.fillPoly(mask, [points], 1)
    margin = max(1, round(width * ZONE_MARGIN))
    mask = cv2.dilate(mask, np.ones((2 * margin + 1, 2 * margin + 1), dtype=np.uint8))
    return mask.astype(bool)
