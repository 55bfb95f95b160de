"""Exposed trash (暴露垃圾): a new static object left in a no-dumping zone for ``dwell_seconds``.

No trash detector ships, so the default method is a background model on the camera's own pixels:
a slow long-term background (``background_seconds`` of memory) against a fast short-term one. A
region that differs from the long-term background, is stable in the short term (it is not moving),
and is not explained by a tracked person or vehicle is a candidate; a candidate that stays
``dwell_seconds`` is an incident, and ends when the region matches the background again (removed).
The long-term background is frozen under candidates so a pile is not absorbed while it is there.

Lighting: short-term frames are gain-matched to the background before comparing, and when more
than ``lighting_change_ratio`` of a zone changes at once (clouds, street lights) the background is
re-based instead of raising alerts. An operator with a trash detector lists its classes in
``trash_classes``: tracked objects of those classes count as candidates too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from algorithms.base import (
    AlgorithmManifest,
    AnalysedFrame,
    DwellParams,
    DwellRule,
    Observation,
    box_iou,
)

WORK_WIDTH = 320  # the background model runs on frames scaled to this width


class ExposedTrashParams(DwellParams):
    dwell_seconds: float = Field(default=300.0, gt=0, description="How long an object stays before an alert")
    grace_seconds: float = Field(
        default=20.0, ge=0, description="Occlusions shorter than this keep the object"
    )
    min_area_ratio: float = Field(default=0.001, gt=0, lt=1, description="Smallest object, fraction of frame")
    max_area_ratio: float = Field(default=0.08, gt=0, le=1, description="Largest object, fraction of frame")
    background_seconds: float = Field(default=600.0, gt=0, description="Memory of the long-term background")
    short_term_seconds: float = Field(default=4.0, gt=0, description="Memory of the short-term background")
    difference_threshold: float = Field(
        default=28.0, gt=0, le=255, description="Grey-level change that counts"
    )
    lighting_change_ratio: float = Field(
        default=0.35,
        gt=0,
        le=1,
        description="Share of a zone changing at once that means lighting, not trash",
    )
    trash_classes: list[str] = Field(
        default_factory=list, description="Classes of a dedicated trash detector"
    )


@dataclass
class _Candidate:
    key: int
    bbox: tuple[float, float, float, float]  # pixels of the original frame
    first_seen: float
    last_seen: float


class ExposedTrash(DwellRule):
    manifest = AlgorithmManifest(
        name="exposed_trash",
        version="1.0.0",
        params_model=ExposedTrashParams,
        families=frozenset({"person", "vehicle"}),
        description="A new static object stays in a no-dumping zone longer than dwell_seconds",
    )
    params: ExposedTrashParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._long: np.ndarray | None = None
        self._short: np.ndarray | None = None
        self._zone_masks: dict[str, np.ndarray] = {}
        self._last_t: float | None = None
        self._candidates: list[_Candidate] = []
        self._next_key = 0

    # -- background model -------------------------------------------------------------------

    def _prepare(self, frame: AnalysedFrame) -> tuple[np.ndarray, float]:
        scale = WORK_WIDTH / frame.width
        size = (WORK_WIDTH, max(1, round(frame.height * scale)))
        grey = cv2.cvtColor(cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        grey = cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32)
        if not self._zone_masks:
            for zone in self.zones:
                mask = np.zeros(grey.shape, np.uint8)
                points = np.array([(x * size[0], y * size[1]) for x, y in zone.polygon], np.int32)
                cv2.fillPoly(mask, [points], 1)
                self._zone_masks[zone.name] = mask.astype(bool)
        return grey, scale

    def _static_foreground(self, frame: AnalysedFrame) -> tuple[np.ndarray, float]:
        grey, scale = self._prepare(frame)
        dt = 0.5 if self._last_t is None else max(frame.timestamp - self._last_t, 1e-3)
        self._last_t = frame.timestamp
        if self._long is None:
            self._long, self._short = grey.copy(), grey.copy()
            return np.zeros(grey.shape, bool), scale
        alpha_short = min(1.0, dt / self.params.short_term_seconds)
        cv2.accumulateWeighted(grey, self._short, alpha_short)

        in_zones = np.any(list(self._zone_masks.values()), axis=0)
        gain = float(self._long[in_zones].mean() / max(self._short[in_zones].mean(), 1.0))
        differs = np.abs(self._short * gain - self._long) > self.params.difference_threshold
        settled = np.abs(grey - self._short) < self.params.difference_threshold
        static = differs & settled & in_zones

        explained = np.zeros(grey.shape, np.uint8)  # people and vehicles explain their own pixels
        for obj in frame.objects:
            if obj.family in ("person", "vehicle"):
                x1, y1, x2, y2 = (round(v * scale) for v in obj.bbox)
                pad = max(2, round(0.1 * (y2 - y1)))
                cv2.rectangle(explained, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), 1, -1)
        static &= explained == 0

        for name, mask in self._zone_masks.items():
            if static[mask].mean() > self.params.lighting_change_ratio:  # lighting, not an object
                self._long[mask] = self._short[mask]
                static[mask] = False
                self._candidates = [c for c in self._candidates if not self._in_zone(c, name, scale)]

        frozen = static.astype(np.uint8)
        for candidate in self._candidates:
            x1, y1, x2, y2 = (round(v * scale) for v in candidate.bbox)
            frozen[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = 1
        alpha_long = min(1.0, dt / self.params.background_seconds)
        cv2.accumulateWeighted(grey, self._long, alpha_long, mask=(frozen == 0).astype(np.uint8))
        return static, scale

    def _in_zone(self, candidate: _Candidate, zone_name: str, scale: float) -> bool:
        x = (candidate.bbox[0] + candidate.bbox[2]) / 2 * scale
        y = candidate.bbox[3] * scale
        mask = self._zone_masks[zone_name]
        return bool(mask[min(int(y), mask.shape[0] - 1), min(int(x), mask.shape[1] - 1)])

    # -- DwellRule ----------------------------------------------------------------------------

    def observe(self, frame: AnalysedFrame) -> dict[Any, Observation]:
        now = frame.timestamp
        static, scale = self._static_foreground(frame)
        mask = cv2.morphologyEx(static.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        frame_area = frame.width * frame.height
        blobs: list[tuple[tuple[float, float, float, float], float]] = []
        for x, y, w, h, area in stats[1:count]:
            real_area = area / (scale * scale)
            if (
                self.params.min_area_ratio * frame_area
                <= real_area
                <= self.params.max_area_ratio * frame_area
            ):
                box = (x / scale, y / scale, (x + w) / scale, (y + h) / scale)
                blobs.append((box, min(1.0, float(area) / max(w * h, 1))))
        for obj in frame.objects:
            if obj.class_name in self.params.trash_classes and self.relevant(frame, obj):
                blobs.append((obj.bbox, obj.confidence))

        seen: dict[Any, Observation] = {}
        for box, confidence in blobs:
            zone = self.zone_of(frame, box)
            if zone is None:
                continue
            candidate = self._match(box, now)
            seen[candidate.key] = Observation(
                zone=zone,
                bbox=box,
                confidence=round(confidence, 3),
                since=candidate.first_seen,
                details={"area_ratio": round((box[2] - box[0]) * (box[3] - box[1]) / frame_area, 5)},
            )
        self._candidates = [c for c in self._candidates if now - c.last_seen <= self.params.grace_seconds]
        return seen

    def _match(self, box: tuple[float, float, float, float], now: float) -> _Candidate:
        best = max(self._candidates, key=lambda c: box_iou(c.bbox, box), default=None)
        if best is not None and box_iou(best.bbox, box) >= 0.3:
            best.bbox, best.last_seen = box, now
            return best
        self._next_key += 1
        candidate = _Candidate(self._next_key, box, now, now)
        self._candidates.append(candidate)
        return candidate

    def end_reason(self, key: Any) -> str:
        return "removed"
