"""Street vending (占道经营 / 游商): people staying with vending props in a pavement or road-side zone.

A stall is a prop (umbrella, table, chair, …; the detector's COCO classes) that stands still in a
zone, with at least ``min_people`` people standing still close to it (within ``proximity_ratio``
of a person's height). Pedestrians walking through never stand still long enough; people waiting
at a bus stop have no props beside them. The incident reports the people and props counted.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from retina.algorithms.sdk import (
    AlgorithmManifest,
    AnalysedFrame,
    DwellParams,
    DwellRule,
    Observation,
    StillnessTracker,
    TrackedObject,
    anchor_point,
    union_box,
)

# Bench and bicycle/motorcycle are left out by default: bus stops have benches, and people stand
# beside parked bikes. A city whose vendors use tricycle carts adds them here.
DEFAULT_PROPS = ["umbrella", "dining table", "chair", "potted plant", "suitcase"]


class StreetVendingParams(DwellParams):
    dwell_seconds: float = Field(default=120.0, gt=0, description="How long a stall stays before an alert")
    prop_classes: list[str] = Field(default_factory=lambda: list(DEFAULT_PROPS), min_length=1)
    min_people: int = Field(default=1, ge=1)
    min_props: int = Field(default=1, ge=1)
    still_seconds: float = Field(
        default=15.0, ge=0, description="People and props count once they have stood still this long"
    )
    max_movement_ratio: float = Field(
        default=0.5, gt=0, le=3, description="Movement still counted as standing"
    )
    proximity_ratio: float = Field(
        default=1.5, gt=0, description="A person belongs to a prop within this many person-heights"
    )
    max_prop_area_ratio: float = Field(
        default=0.1, gt=0, le=1, description="Ignore prop boxes larger than this fraction of the frame"
    )
    grace_seconds: float = Field(default=15.0, ge=0)


class StreetVending(DwellRule):
    manifest = AlgorithmManifest(
        name="street_vending",
        version="1.0.0",
        params_model=StreetVendingParams,
        families=frozenset(
            {"person", "vehicle", "umbrella", "dining table", "chair", "potted plant", "suitcase"}
        ),
        description="People with vending props stay in a zone longer than dwell_seconds",
    )
    params: StreetVendingParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._still = StillnessTracker(
            self.params.max_movement_ratio, forget_seconds=self.params.grace_seconds
        )

    def observe(self, frame: AnalysedFrame) -> dict[Any, Observation]:
        now = frame.timestamp
        frame_area = frame.width * frame.height
        still_people: dict[str, list[tuple[TrackedObject, float]]] = {}
        still_props: dict[str, list[tuple[TrackedObject, float]]] = {}
        for obj in frame.objects:
            is_person = obj.family == "person"
            is_prop = obj.class_name in self.params.prop_classes
            if not (is_person or is_prop) or not self.relevant(frame, obj):
                continue
            x1, y1, x2, y2 = obj.bbox
            if is_prop and (x2 - x1) * (y2 - y1) > self.params.max_prop_area_ratio * frame_area:
                continue
            zone = self.zone_of(frame, obj.bbox)
            since = self._still.update(obj.track_id, obj.bbox, now)
            if zone is None or now - since < self.params.still_seconds:
                continue
            target = still_people if is_person else still_props
            target.setdefault(zone.name, []).append((obj, since))
        self._still.forget_stale(now)

        seen = {}
        for zone in self.zones:
            props, people = still_props.get(zone.name, []), still_people.get(zone.name, [])
            vendors = [(p, s) for p, s in people if any(self._near(p, prop) for prop, _ in props)]
            stall = [(prop, s) for prop, s in props if any(self._near(p, prop) for p, _ in vendors)]
            if len(vendors) < self.params.min_people or len(stall) < self.params.min_props:
                continue
            members = vendors + stall
            seen[zone.name] = Observation(
                zone=zone,
                bbox=union_box([o.bbox for o, _ in members]),
                confidence=sum(o.confidence for o, _ in members) / len(members),
                since=max(since for _, since in members),
                details={
                    "people": len(vendors),
                    "props": len(stall),
                    "prop_classes": sorted({o.class_name for o, _ in stall}),
                },
            )
        return seen

    def _near(self, person: TrackedObject, prop: TrackedObject) -> bool:
        px, py = anchor_point(person.bbox)
        qx, qy = anchor_point(prop.bbox)
        height = max(person.bbox[3] - person.bbox[1], 1.0)
        return math.hypot(px - qx, py - qy) <= self.params.proximity_ratio * height

    def end_reason(self, key: Any) -> str:
        return "stall_gone"
