"""Illegal parking (违法停车): a vehicle standing still in a no-parking zone for longer than a dwell time.

A vehicle "stands" while its bottom-centre (where it meets the road) stays inside a zone and
moves less than ``max_movement_ratio`` of its own size from where the stay began. Dwell is
measured in stream time. One stay is one incident: ``new`` when the dwell passes
``dwell_seconds``, ``update`` as it grows (or better evidence appears), ``end`` when the vehicle
drives off, leaves the zone, or has not been seen for ``lost_grace_seconds``. A track that the
tracker loses and re-finds under a new id within the grace period keeps its stay (matched by box
overlap), so a flicker never raises a second incident for the same car.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from retina.algorithms.sdk import (
    Algorithm,
    AlgorithmManifest,
    AnalysedFrame,
    IncidentEvent,
    IncidentLifecycle,
    Snapshot,
    TrackedObject,
    Zone,
    anchor_point,
    box_iou,
    box_size,
    has_moved,
)


class IllegalParkingParams(BaseModel):
    """Parameters of illegal_parking; every duration is in seconds of stream time."""

    model_config = ConfigDict(extra="forbid")
    dwell_seconds: float = Field(default=60.0, gt=0, description="Standing time before an incident opens")
    max_movement_ratio: float = Field(
        default=0.3, gt=0, le=3, description="Movement allowed during a stay, as a fraction of the box size"
    )
    lost_grace_seconds: float = Field(
        default=10.0, ge=0, description="How long an unseen vehicle keeps its stay (occlusion, flicker)"
    )
    update_interval_seconds: float = Field(default=30.0, gt=0, description="Interval of update events")
    min_box_area_ratio: float = Field(
        default=0.0005, ge=0, lt=1, description="Ignore vehicles smaller than this fraction of the frame"
    )
    rematch_iou: float = Field(
        default=0.3, gt=0, le=1, description="Box overlap that hands a lost vehicle's stay to a new track id"
    )


@dataclass
class _Stay:
    key: int
    track_id: int
    zone: Zone
    anchor: tuple[float, float]  # pixels, bottom-centre where the stay began
    size: float  # pixels, sqrt(box area) where the stay began
    started_at: float
    last_seen_at: float
    bbox: tuple[float, float, float, float]  # pixels
    confidence: float
    best_confidence: float
    best_snapshot: Snapshot
    adopted_from: int | None = None  # the track id this stay had before a re-match
    adopted_at: float = 0.0


class IllegalParking(Algorithm):
    manifest = AlgorithmManifest(
        name="illegal_parking",
        version="1.0.0",
        params_model=IllegalParkingParams,
        families=frozenset({"vehicle"}),
        description="A vehicle stands in a no-parking zone longer than dwell_seconds",
    )
    params: IllegalParkingParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lifecycle = IncidentLifecycle(
            self.camera.camera_id, self.manifest, self.params.update_interval_seconds
        )
        self._stays: dict[int, _Stay] = {}  # by current track id
        self._next_key = 0

    def process(self, frame: AnalysedFrame) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        now = frame.timestamp
        visible = {obj.track_id for obj in frame.objects}
        seen: set[int] = set()
        for obj in frame.objects:
            if obj.family != "vehicle" or not self.relevant(frame, obj):
                continue
            seen.add(obj.track_id)
            events += self._observe(frame, obj, now, visible)
        for track_id, stay in list(self._stays.items()):
            if track_id not in seen and now - stay.last_seen_at > self.params.lost_grace_seconds:
                events += self._end_stay(track_id, ended_at=stay.last_seen_at, reason="lost")
        return events

    def finish(self, timestamp: float, reason: str) -> list[IncidentEvent]:
        events = []
        for track_id, stay in list(self._stays.items()):
            events += self._end_stay(track_id, ended_at=min(timestamp, stay.last_seen_at), reason=reason)
        return events + self.lifecycle.close_all(ended_at=timestamp, reason=reason)  # handovers waiting

    # -- internals -------------------------------------------------------------------------

    def _adopt_lost_stay(self, obj: TrackedObject, now: float, visible: set[int]) -> None:
        """Hand the stay of a vehicle the tracker lost to a new track standing where it stood.

        Only stays whose track is not visible in this frame qualify, and only when the new track's
        anchor is within the stay's movement allowance: a car driving past a parked one that it
        hides for a moment never takes over the parked car's stay.
        """
        best_id, best_iou = None, self.params.rematch_iou
        for track_id, stay in self._stays.items():
            if track_id in visible or stay.last_seen_at >= now:
                continue  # seen in this frame: not lost
            if has_moved(obj.bbox, stay.anchor, stay.size, self.params.max_movement_ratio):
                continue
            iou = box_iou(stay.bbox, obj.bbox)
            if iou >= best_iou:
                best_id, best_iou = track_id, iou
        if best_id is not None:
            stay = self._stays.pop(best_id)
            stay.adopted_from, stay.adopted_at = best_id, now
            stay.track_id = obj.track_id
            self._stays[obj.track_id] = stay

    def _return_adopted_stay(self, stay: _Stay) -> None:
        """A track that took over a stay moved off at once: it was a passing vehicle, not the
        parked one. Give the stay back to its lost track (it waits out the grace period)."""
        del self._stays[stay.track_id]
        stay.track_id, stay.adopted_from = stay.adopted_from, None
        self._stays[stay.track_id] = stay

    def _observe(
        self, frame: AnalysedFrame, obj: TrackedObject, now: float, visible: set[int]
    ) -> list[IncidentEvent]:
        if obj.track_id not in self._stays:
            self._adopt_lost_stay(obj, now, visible)
        zone = self.zone_of(frame, obj.bbox)
        stay = self._stays.get(obj.track_id)
        events: list[IncidentEvent] = []

        if stay is not None and (zone is None or zone.name != stay.zone.name):
            events += self._end_stay(obj.track_id, ended_at=now, reason="left_zone")
            stay = None
        if stay is not None and has_moved(obj.bbox, stay.anchor, stay.size, self.params.max_movement_ratio):
            recently_adopted = now - stay.adopted_at <= self.params.lost_grace_seconds
            if stay.adopted_from is not None and recently_adopted and stay.adopted_from not in self._stays:
                self._return_adopted_stay(stay)
            else:
                events += self._end_stay(obj.track_id, ended_at=now, reason="moved")
            stay = None
        if zone is None:
            return events
        if stay is None:
            self._start_stay(frame, obj, zone, now)
            return events

        stay.last_seen_at = now
        stay.bbox = obj.bbox
        stay.confidence = obj.confidence
        better: Snapshot | None = None
        if obj.confidence > stay.best_confidence:
            stay.best_confidence = obj.confidence
            stay.best_snapshot = better = self._snapshot(frame, obj, zone)

        dwell = now - stay.started_at
        bbox = frame.normalise(obj.bbox)
        if self.lifecycle.is_open(stay.key):
            event = self.lifecycle.observe(
                stay.key, now=now, bbox=bbox, confidence=obj.confidence, snapshot=better
            )
            if event:
                events.append(event)
        elif dwell >= self.params.dwell_seconds and self.is_active(now):
            events.append(
                self.lifecycle.open(
                    stay.key,
                    zone=zone.name,
                    track_id=obj.track_id,
                    started_at=stay.started_at,
                    now=now,
                    bbox=bbox,
                    confidence=obj.confidence,
                    snapshot=stay.best_snapshot,
                    snapshot_confidence=stay.best_confidence,
                    details={"vehicle_class": obj.class_name},
                )
            )
        return events

    def _start_stay(self, frame: AnalysedFrame, obj: TrackedObject, zone: Zone, now: float) -> None:
        self._next_key += 1
        self._stays[obj.track_id] = _Stay(
            key=self._next_key,
            track_id=obj.track_id,
            zone=zone,
            anchor=anchor_point(obj.bbox),
            size=box_size(obj.bbox),
            started_at=now,
            last_seen_at=now,
            bbox=obj.bbox,
            confidence=obj.confidence,
            best_confidence=obj.confidence,
            best_snapshot=self._snapshot(frame, obj, zone),
        )

    def handover_seconds(self) -> float:
        # The vehicle must stand a whole dwell again before the stay is confirmed.
        return self.params.dwell_seconds + self.params.lost_grace_seconds + 60

    def _end_stay(self, track_id: int, *, ended_at: float, reason: str) -> list[IncidentEvent]:
        stay = self._stays.pop(track_id)
        if not self.lifecycle.is_open(stay.key):
            return []
        return [self.lifecycle.close(stay.key, ended_at=ended_at, reason=reason)]

    @staticmethod
    def _snapshot(frame: AnalysedFrame, obj: TrackedObject, zone: Zone) -> Snapshot:
        return Snapshot(
            image=frame.image, bbox=obj.bbox, zone_polygon=zone.polygon, timestamp=frame.timestamp
        )
