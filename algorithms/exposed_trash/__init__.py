"""Exposed trash (暴露垃圾): a new static object left in a no-dumping zone for ``dwell_seconds``.

No trash detector ships, so the default method is a background model on the camera's own pixels:
a slow long-term background (``background_seconds`` of memory) against a fast short-term one. A
region that differs from the long-term background, is stable in the short term (it is not moving),
and is not explained by a tracked person or vehicle is a candidate; a candidate that stays
``dwell_seconds`` is an incident, and ends when the region matches the background again (removed).
The long-term background is frozen under candidates (and never learns people or vehicles) so a
pile is not absorbed while it is there. The background starts as the running mean of the first
frames and raises nothing during its first ``warmup_seconds``; a candidate must be seen in at least
``min_presence_ratio`` of the frames since it appeared, which rejects flicker (on-screen clocks,
swaying leaves, noise).

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

from retina.algorithms.sdk import (
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
    warmup_seconds: float = Field(default=20.0, ge=0, description="Learn the scene this long before alerting")
    min_presence_ratio: float = Field(
        default=0.7, gt=0, le=1, description="Share of frames a candidate must be seen in (rejects flicker)"
    )
    explain_memory_seconds: float = Field(
        default=10.0, ge=0, description="Where a person or vehicle was this recently, changes are theirs"
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
    frames: int = 1  # frames analysed since it first appeared
    hits: int = 1  # of which it was seen in


class ExposedTrash(DwellRule):
    manifest = AlgorithmManifest(
        name="exposed_trash",
        version="1.0.0",
        params_model=ExposedTrashParams,
        families=frozenset({"person", "vehicle", "non_motor"}),
        description="A new static object stays in a no-dumping zone longer than dwell_seconds",
    )
    params: ExposedTrashParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._long: np.ndarray | None = None
        self._short: np.ndarray | None = None
        self._zone_masks: dict[str, np.ndarray] = {}
        self._last_t: float | None = None
        self._started_at: float | None = None
        self._frames_seen = 0
        self._recent_objects: list[tuple[float, tuple[float, float, float, float]]] = []  # (seen at, bbox)
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
        now = frame.timestamp
        dt = 0.5 if self._last_t is None else max(now - self._last_t, 1e-3)
        self._last_t = now
        self._frames_seen += 1
        explained = self._explained_mask(frame, grey.shape, scale)
        if self._long is None:
            self._long, self._short, self._started_at = grey.copy(), grey.copy(), now
            return np.zeros(grey.shape, bool), scale
        cv2.accumulateWeighted(grey, self._short, min(1.0, dt / self.params.short_term_seconds))

        in_zones = np.any(list(self._zone_masks.values()), axis=0)
        gain = float(self._long[in_zones].mean() / max(self._short[in_zones].mean(), 1.0))
        differs = np.abs(self._short * gain - self._long) > self.params.difference_threshold
        settled = np.abs(grey - self._short) < self.params.difference_threshold
        static = differs & settled & in_zones & (explained == 0)
        if now - self._started_at < self.params.warmup_seconds:
            static[:] = False

        for name, mask in self._zone_masks.items():
            if static[mask].mean() > self.params.lighting_change_ratio:  # lighting, not an object
                self._long[mask] = self._short[mask]
                static[mask] = False
                self._candidates = [c for c in self._candidates if not self._in_zone(c, name, scale)]

        # The background never learns people, vehicles or candidates. It starts as the running mean
        # of every frame, then keeps a slow exponential memory.
        frozen = static.astype(np.uint8) | explained
        for candidate in self._candidates:
            x1, y1, x2, y2 = (round(v * scale) for v in candidate.bbox)
            frozen[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = 1
        alpha_long = max(dt / self.params.background_seconds, 1.0 / self._frames_seen)
        cv2.accumulateWeighted(grey, self._long, alpha_long, mask=(frozen == 0).astype(np.uint8))
        return static, scale

    def _explained_mask(self, frame: AnalysedFrame, shape: tuple[int, ...], scale: float) -> np.ndarray:
        """Pixels a person or vehicle covers now or covered within ``explain_memory_seconds``."""
        now = frame.timestamp
        memory = self.params.explain_memory_seconds
        self._recent_objects = [(t, box) for t, box in self._recent_objects if now - t <= memory]
        moving = self.manifest.families  # people and vehicles explain a change; they are not trash
        self._recent_objects += [(now, o.bbox) for o in frame.objects if o.family in moving]
        explained = np.zeros(shape, np.uint8)
        for _, box in self._recent_objects:
            x1, y1, x2, y2 = (round(v * scale) for v in box)
            pad = max(2, round(0.1 * (y2 - y1)))
            cv2.rectangle(explained, (x1 - pad, y1 - pad), (x2 + pad, y2 + pad), 1, -1)
        return explained

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
        # Close gaps of a few pixels so one object with parts of different colours is one blob.
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        frame_area = frame.width * frame.height
        blobs: list[tuple[tuple[float, float, float, float], float]] = []
        parts = [((x, y, x + w, y + h), float(area)) for x, y, w, h, area in stats[1:count].tolist()]
        smallest, largest = self.params.min_area_ratio * frame_area, self.params.max_area_ratio * frame_area
        for (x1, y1, x2, y2), area in _group_nearby(parts):
            if smallest <= area / (scale * scale) <= largest:
                fill = area / max((x2 - x1) * (y2 - y1), 1.0)
                blobs.append(((x1 / scale, y1 / scale, x2 / scale, y2 / scale), min(1.0, fill)))
        for obj in frame.objects:
            if obj.class_name in self.params.trash_classes and self.relevant(frame, obj):
                blobs.append((obj.bbox, obj.confidence))

        for candidate in self._candidates:
            candidate.frames += 1
        seen: dict[Any, Observation] = {}
        for box, confidence in blobs:
            zone = self.zone_of(frame, box)
            if zone is None:
                continue
            candidate = self._match(box, now)
            if candidate.hits < self.params.min_presence_ratio * candidate.frames:
                continue  # flickers: not a standing object
            seen[candidate.key] = Observation(
                zone=zone,
                bbox=box,
                confidence=round(confidence, 3),
                since=candidate.first_seen,
                track_id=candidate.key,
                details={"area_ratio": round((box[2] - box[0]) * (box[3] - box[1]) / frame_area, 5)},
            )
        self._candidates = [c for c in self._candidates if now - c.last_seen <= self.params.grace_seconds]
        return seen

    def _match(self, box: tuple[float, float, float, float], now: float) -> _Candidate:
        """The candidate this blob belongs to (overlap, or a part of it seen alone), else a new one."""
        best = max(self._candidates, key=lambda c: _overlap(c.bbox, box), default=None)
        if best is not None and _overlap(best.bbox, box) >= 0.5:
            if box_iou(best.bbox, box) >= 0.3:  # a fragment keeps the candidate's fuller box
                best.bbox = box
            if best.last_seen < now:
                best.hits += 1
            best.last_seen = now
            return best
        self._next_key += 1
        candidate = _Candidate(self._next_key, box, now, now)
        self._candidates.append(candidate)
        return candidate

    def end_reason(self, key: Any) -> str:
        return "removed"


def _group_nearby(
    parts: list[tuple[tuple[float, float, float, float], float]],
) -> list[tuple[tuple[float, float, float, float], float]]:
    """Merge blobs closer than half the taller one's height: the parts of one object (or one pile)."""
    groups = list(parts)
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                (a, area_a), (b, area_b) = groups[i], groups[j]
                gap = 0.5 * max(a[3] - a[1], b[3] - b[1])
                if a[0] - gap <= b[2] and b[0] - gap <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3]:
                    box = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    groups[i] = (box, area_a + area_b)
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over the smaller box's area: 1 when one box holds the other."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0
