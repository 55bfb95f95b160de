"""Illegal parking (违法停车): a vehicle standing still in a no-parking zone for longer than a dwell time.

A vehicle "stands" while its bottom-centre (where it meets the road) stays inside a zone and
moves less than ``max_movement_ratio`` of its own size from where the stay began. Dwell is
measured in stream time. One stay is one incident: ``new`` when the dwell passes
``dwell_seconds``, ``update`` as it grows (or better evidence appears), ``end`` when the vehicle
drives off (``moved``), leaves the zone (``left_zone``), or can no longer be confirmed (``lost``).

One stay per physical vehicle, whatever the tracker does:

- **Another track at the same place continues the stay.** A track that appears where a stay is
  (same zone, anchor within the movement allowance, box overlap ≥ ``rematch_iou``) joins it — a
  car the tracker re-finds under a new id, or a second box of the same car — instead of opening a
  second stay. A track that joined and drives off at once was a passing vehicle: it is detached and
  the stay goes on.
- **A standing vehicle outlives its track.** Parked cars score low on int8 detectors and drop
  out for seconds at a time; passing traffic hides them. While no track gives a box for a stay, the
  place is looked at: if it still looks like the vehicle's last still sighting (normalised
  cross-correlation ≥ ``min_appearance_similarity``) the vehicle is still there and its stay goes
  on; if another tracked object covers it (≥ ``occluded_coverage`` of its box) the stay waits;
  if it looks different and nothing covers it for ``vacant_seconds``, the vehicle has driven off
  (``moved``, ended at its last sighting). Where the picture cannot tell (a featureless box), an
  unseen stay ends ``lost`` after ``lost_grace_seconds``; whatever the picture says, one without
  any tracker box for ``max_hold_seconds`` ends ``lost``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from retina.algorithms.illegal_parking.appearance import appearance_patch, appearance_similarity, box_coverage
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

Box = tuple[float, float, float, float]


class IllegalParkingParams(BaseModel):
    """Parameters of illegal_parking; every duration is in seconds of stream time."""

    model_config = ConfigDict(extra="forbid")
    dwell_seconds: float = Field(default=60.0, gt=0, description="Standing time before an incident opens")
    max_movement_ratio: float = Field(
        default=0.3, gt=0, le=3, description="Movement allowed during a stay, as a fraction of the box size"
    )
    lost_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long an unseen vehicle keeps its stay when its picture cannot confirm it either",
    )
    update_interval_seconds: float = Field(default=30.0, gt=0, description="Interval of update events")
    min_box_area_ratio: float = Field(
        default=0.0005, ge=0, lt=1, description="Ignore vehicles smaller than this fraction of the frame"
    )
    rematch_iou: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Box overlap at which another track at a stay's place continues that stay",
    )
    min_appearance_similarity: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="An unseen vehicle's place looking at least this alike (normalised cross-correlation)"
        " to its last still sighting keeps the stay",
    )
    vacant_seconds: float = Field(
        default=2.0, ge=0, description="How long the place must look empty before the stay ends (moved)"
    )
    occluded_coverage: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Another tracked object covering this fraction of an unseen vehicle's box hides it:"
        " the stay waits instead of judging the place empty",
    )
    max_hold_seconds: float = Field(
        default=300.0,
        gt=0,
        description="The longest a stay is kept without any tracker box (by its picture, or occluded)",
    )


@dataclass
class _Member:
    """A track that belongs to a stay."""

    joined_at: float
    bbox: Box | None = None  # its box when last seen
    confirmed: bool = False  # it began the stay, or has stood at its place twice in a row since joining


@dataclass
class _Stay:
    key: int
    track_id: int  # the track that began it (the incident's track id)
    zone: Zone
    anchor: tuple[float, float]  # pixels, bottom-centre where the stay began
    size: float  # pixels, sqrt(box area) where the stay began
    started_at: float
    last_seen_at: float  # last confirmed there: by a track's box or by its picture
    last_box_at: float  # last time a track gave a box for it
    bbox: Box  # pixels, its box at the last still sighting
    confidence: float
    vehicle_class: str
    best_confidence: float
    best_snapshot: Snapshot
    members: dict[int, _Member] = field(default_factory=dict)  # by track id
    reference: np.ndarray | None = None  # appearance_patch of ``bbox`` at the last still sighting
    # (a track's box at the place twice in a row: a vehicle passing through never leaves one)
    vacant_since: float | None = None  # the place has looked empty since


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
        self._stays: dict[int, _Stay] = {}  # by stay key
        self._stay_of_track: dict[int, int] = {}  # track id → stay key
        self._next_key = 0

    def process(self, frame: AnalysedFrame) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        now = frame.timestamp
        reported: set[int] = set()  # stays a track gave a box for in this frame
        for obj in frame.objects:
            if obj.family != "vehicle" or not self.relevant(frame, obj):
                continue
            events += self._observe(frame, obj, now, reported)
        for stay in list(self._stays.values()):
            if stay.key not in reported:
                events += self._check_unseen(frame, stay, now)
        return events

    def finish(self, timestamp: float, reason: str) -> list[IncidentEvent]:
        events = []
        for stay in list(self._stays.values()):
            events += self._end_stay(stay, ended_at=min(timestamp, stay.last_seen_at), reason=reason)
        return events + self.lifecycle.close_all(ended_at=timestamp, reason=reason)  # handovers waiting

    def handover_seconds(self) -> float:
        # The vehicle must stand a whole dwell again before the stay is confirmed.
        return self.params.dwell_seconds + self.params.lost_grace_seconds + 60

    # -- a track's box -----------------------------------------------------------------------

    def _observe(
        self, frame: AnalysedFrame, obj: TrackedObject, now: float, reported: set[int]
    ) -> list[IncidentEvent]:
        zone = self.zone_of(frame, obj.bbox)
        key = self._stay_of_track.get(obj.track_id)
        stay = self._stays.get(key) if key is not None else None
        events: list[IncidentEvent] = []

        if stay is not None and (zone is None or zone.name != stay.zone.name):
            events += self._track_moved_off(stay, obj.track_id, now, "left_zone")
            stay = None
        if stay is not None and has_moved(obj.bbox, stay.anchor, stay.size, self.params.max_movement_ratio):
            events += self._track_moved_off(stay, obj.track_id, now, "moved")
            stay = None
        if zone is None:
            return events
        # A track without a stay of its own yet (or with a young one) standing where an older stay
        # is belongs to that stay: the same vehicle, re-found or seen twice.
        young = stay is not None and not self.lifecycle.is_open(stay.key) and len(stay.members) == 1
        if stay is None or young:
            older = self._stay_at(zone, obj.bbox, before=stay)
            if older is not None:
                if stay is not None:
                    self._forget(stay)  # no incident yet: nothing to end
                older.members[obj.track_id] = _Member(joined_at=now)
                self._stay_of_track[obj.track_id] = older.key
                stay = older
        if stay is None:
            stay = self._start_stay(frame, obj, zone, now)

        member = stay.members[obj.track_id]
        still = member.bbox is not None and not has_moved(
            obj.bbox, anchor_point(member.bbox), box_size(member.bbox), self.params.max_movement_ratio
        )
        member.bbox = obj.bbox
        member.confirmed = member.confirmed or still
        if not member.confirmed:
            return events  # one box at the place may be a vehicle passing through: wait for a second
        if stay.key in reported:
            return events  # another box of this vehicle already reported it in this frame
        reported.add(stay.key)
        stay.last_seen_at = stay.last_box_at = now
        stay.vacant_since = None
        stay.confidence, stay.vehicle_class = obj.confidence, obj.class_name
        if still:  # the picture to recognise it by, from a track that stood still since its last box
            stay.bbox = obj.bbox
            stay.reference = appearance_patch(frame.image, obj.bbox)
        better: Snapshot | None = None
        if obj.confidence > stay.best_confidence:
            stay.best_confidence = obj.confidence
            stay.best_snapshot = better = self._snapshot(frame, obj.bbox, zone)
        return events + self._report(frame, stay, now, obj.bbox, better)

    def _track_moved_off(self, stay: _Stay, track_id: int, now: float, reason: str) -> list[IncidentEvent]:
        """A track of ``stay`` left its place. A track that joined the stay only just now was a
        vehicle passing the parked one: it leaves the stay, which goes on. Otherwise the vehicle
        drove off or out of the zone: the stay ends."""
        member = stay.members[track_id]
        joined_late = member.joined_at > stay.started_at
        if joined_late and now - member.joined_at <= self.params.lost_grace_seconds:
            del stay.members[track_id]
            del self._stay_of_track[track_id]
            return []
        return self._end_stay(stay, ended_at=now, reason=reason)

    def _stay_at(self, zone: Zone, bbox: Box, before: _Stay | None) -> _Stay | None:
        """The stay (begun before ``before``, if given) whose place ``bbox`` stands on, best overlap."""
        best, best_iou = None, self.params.rematch_iou
        for stay in self._stays.values():
            if stay is before or stay.zone.name != zone.name:
                continue
            if before is not None and stay.started_at > before.started_at:
                continue
            if has_moved(bbox, stay.anchor, stay.size, self.params.max_movement_ratio):
                continue
            iou = box_iou(stay.bbox, bbox)
            if iou >= best_iou:
                best, best_iou = stay, iou
        return best

    # -- a stay no track gave a box for ------------------------------------------------------

    def _check_unseen(self, frame: AnalysedFrame, stay: _Stay, now: float) -> list[IncidentEvent]:
        """Is the vehicle of a stay that no track reported in this frame still there? Its picture
        decides: the same → yes; hidden by another object → wait; different for ``vacant_seconds``
        → it drove off; no picture to go by → ``lost`` after ``lost_grace_seconds``."""
        p = self.params
        if now - stay.last_box_at > p.max_hold_seconds:
            return self._end_stay(stay, ended_at=stay.last_seen_at, reason="lost")
        similarity = None
        if stay.reference is not None:
            current = appearance_patch(frame.image, stay.bbox)
            if current is not None:
                similarity = appearance_similarity(stay.reference, current)
        if similarity is None:
            if now - stay.last_seen_at > p.lost_grace_seconds:
                return self._end_stay(stay, ended_at=stay.last_seen_at, reason="lost")
            return []
        if similarity >= p.min_appearance_similarity:
            stay.last_seen_at = now
            stay.vacant_since = None
            return self._report(frame, stay, now, stay.bbox, None)
        if self._hidden(frame, stay):
            return []  # passing traffic in front of it: neither seen nor gone
        if stay.vacant_since is None:
            stay.vacant_since = now
        if now - stay.vacant_since >= p.vacant_seconds:
            return self._end_stay(stay, ended_at=stay.last_seen_at, reason="moved")
        return []

    def _hidden(self, frame: AnalysedFrame, stay: _Stay) -> bool:
        """Whether another tracked object (any kind) covers enough of the stay's box to hide it."""
        return any(
            not (obj.track_id in stay.members and stay.members[obj.track_id].confirmed)
            and box_coverage(stay.bbox, obj.bbox) >= self.params.occluded_coverage
            for obj in frame.objects
        )

    # -- stays and incidents -----------------------------------------------------------------

    def _report(
        self, frame: AnalysedFrame, stay: _Stay, now: float, bbox: Box, better: Snapshot | None
    ) -> list[IncidentEvent]:
        """The vehicle of ``stay`` is there at ``now``: open its incident once the dwell has passed,
        or update it."""
        normalised = frame.normalise(bbox)
        if self.lifecycle.is_open(stay.key):
            event = self.lifecycle.observe(
                stay.key, now=now, bbox=normalised, confidence=stay.confidence, snapshot=better
            )
            return [event] if event else []
        if (
            now - stay.started_at >= self.params.dwell_seconds
            and self.is_active(now)
            and not self._overlaps_open_incident(stay, normalised)
        ):
            return [
                self.lifecycle.open(
                    stay.key,
                    zone=stay.zone.name,
                    track_id=stay.track_id,
                    started_at=stay.started_at,
                    now=now,
                    bbox=normalised,
                    confidence=stay.confidence,
                    snapshot=stay.best_snapshot,
                    snapshot_confidence=stay.best_confidence,
                    details={"vehicle_class": stay.vehicle_class},
                )
            ]
        return []

    def _overlaps_open_incident(self, stay: _Stay, normalised: Box) -> bool:
        """Whether an incident open in the stay's zone has a box overlapping ``normalised`` by
        ``rematch_iou``: then it is taken for the same vehicle, and the stay opens no second one."""
        overlapping = self.lifecycle.overlapping(stay.zone.name, normalised, self.params.rematch_iou)
        return any(key != stay.key for key in overlapping)

    def _start_stay(self, frame: AnalysedFrame, obj: TrackedObject, zone: Zone, now: float) -> _Stay:
        self._next_key += 1
        stay = _Stay(
            key=self._next_key,
            track_id=obj.track_id,
            zone=zone,
            anchor=anchor_point(obj.bbox),
            size=box_size(obj.bbox),
            started_at=now,
            last_seen_at=now,
            last_box_at=now,
            bbox=obj.bbox,
            confidence=obj.confidence,
            vehicle_class=obj.class_name,
            best_confidence=obj.confidence,
            best_snapshot=self._snapshot(frame, obj.bbox, zone),
            members={obj.track_id: _Member(joined_at=now, confirmed=True)},
        )
        self._stays[stay.key] = stay
        self._stay_of_track[obj.track_id] = stay.key
        return stay

    def _forget(self, stay: _Stay) -> None:
        del self._stays[stay.key]
        for track_id in stay.members:
            if self._stay_of_track.get(track_id) == stay.key:
                del self._stay_of_track[track_id]

    def _end_stay(self, stay: _Stay, *, ended_at: float, reason: str) -> list[IncidentEvent]:
        self._forget(stay)
        if not self.lifecycle.is_open(stay.key):
            return []
        return [self.lifecycle.close(stay.key, ended_at=ended_at, reason=reason)]

    @staticmethod
    def _snapshot(frame: AnalysedFrame, bbox: Box, zone: Zone) -> Snapshot:
        return Snapshot(image=frame.image, bbox=bbox, zone_polygon=zone.polygon, timestamp=frame.timestamp)
