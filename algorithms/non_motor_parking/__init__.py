"""Non-motor vehicles parked where they must not be (非机动车乱停放): bicycles, e-bikes and motorcycles
(the ``non_motor`` family) standing in a no-parking zone.

A non-motor vehicle *stands* while its bottom-centre stays inside a zone and moves less than
``max_movement_ratio`` of its own size, with nobody on it or holding it: a person standing still
whose box covers at least ``rider_overlap_ratio`` of the vehicle's box, feet in its lower half, is
a rider waiting at a light or someone holding the bike, not a parked bike. A standing vehicle
counts once it has stood ``min_stationary_seconds``; cyclists riding past and people walking a bike
never stand that long. A vehicle the tracker loses and re-finds under a new id where it stood keeps
its standing time (matched by box overlap, ``rematch_iou``).

Two modes, chosen by ``max_count`` (one per rule, for all its zones):

- ``max_count: 0`` (default): no non-motor vehicle may stand in the zone. Each vehicle standing
  ``dwell_seconds`` is its own incident (one per vehicle), ended when it leaves or moves off.
- ``max_count: N`` (N ≥ 1): the zone tolerates N standing vehicles. When more than N stand there
  at once for ``dwell_seconds`` the zone has one incident (one per zone situation, however many
  vehicles come and go during it), ended when the count stays at N or fewer.

In both, the situation starts when it really began (the vehicle started standing; the (N+1)-th
vehicle of the crowd started standing), and ``details`` carry ``mode``, ``count`` (standing
vehicles in the zone) and ``classes`` (their detector classes); the zone mode adds ``max_count``.
Grace, cooldown, active hours and updates are :class:`~retina.algorithms.sdk.dwell.DwellRule`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    box_iou,
    box_size,
    has_moved,
    union_box,
)

# A person attends a bike (rides it, holds it) only once they have stood still this long: people
# walking past a parked bike cover it for a moment and must not reset its standing time.
ATTEND_STILL_SECONDS = 1.0


class NonMotorParkingParams(DwellParams):
    """Parameters of non_motor_parking; every duration is in seconds of stream time."""

    dwell_seconds: float = Field(
        default=120.0, gt=0, description="How long a vehicle (or too many vehicles) stands before an alert"
    )
    max_count: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="How many non-motor vehicles may stand in a zone at once; 0: none (one incident per "
        "vehicle), N: an incident per zone when more than N stand there",
    )
    min_stationary_seconds: float = Field(
        default=10.0, ge=0, description="A vehicle counts as standing once it has stood still this long"
    )
    max_movement_ratio: float = Field(
        default=0.4, gt=0, le=3, description="Movement allowed while standing, as a fraction of the box size"
    )
    grace_seconds: float = Field(
        default=15.0, ge=0, description="Gaps shorter than this (passers-by, detector misses) do not end it"
    )
    rider_overlap_ratio: float | None = Field(
        default=0.3,
        gt=0,
        le=1,
        description="A still person covering this share of a vehicle's box rides or holds it (not parked); "
        "null: never",
    )
    rematch_iou: float = Field(
        default=0.3, gt=0, le=1, description="Box overlap that hands a lost vehicle's standing to a new id"
    )
    min_box_area_ratio: float = Field(
        default=0.0005, ge=0, lt=1, description="Ignore vehicles smaller than this fraction of the frame"
    )


@dataclass
class _Stand:
    """One vehicle standing in one place (it survives a change of track id)."""

    key: int
    track_id: int
    anchor: tuple[float, float]  # pixels, where it began to stand
    size: float  # box_size where it began to stand
    since: float
    last_seen_at: float
    bbox: tuple[float, float, float, float]
    attended_at: float | None = None  # last moment someone rode or held it
    previous_track_id: int | None = None  # the id it had before a re-match
    adopted_at: float = 0.0


class NonMotorParking(DwellRule):
    manifest = AlgorithmManifest(
        name="non_motor_parking",
        version="1.0.0",
        params_model=NonMotorParkingParams,
        families=frozenset({"non_motor", "person"}),
        description="Bicycles, e-bikes or motorcycles stand in a no-parking zone: one longer than "
        "dwell_seconds, or more than max_count at once",
    )
    params: NonMotorParkingParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stands: dict[int, _Stand] = {}  # by current track id
        self._next_key = 0
        self._people = StillnessTracker(self.params.max_movement_ratio, forget_seconds=5.0)

    # -- what stands where -------------------------------------------------------------------

    def observe(self, frame: AnalysedFrame) -> dict[Any, Observation]:
        now = frame.timestamp
        still_people = self._still_people(frame, now)
        vehicles = [o for o in frame.objects if o.family == "non_motor" and self.relevant(frame, o)]
        visible = {o.track_id for o in vehicles}
        standing: dict[str, list[tuple[TrackedObject, _Stand, float]]] = {}
        for obj in vehicles:
            stand = self._stand_of(obj, now, visible)
            if any(self._attends(person, obj) for person in still_people):
                stand.attended_at = now
                continue
            since = max(stand.since, stand.attended_at if stand.attended_at is not None else stand.since)
            zone = self.zone_of(frame, obj.bbox)
            if zone is not None and now - since >= self.params.min_stationary_seconds:
                standing.setdefault(zone.name, []).append((obj, stand, since))
        for track_id, stand in list(self._stands.items()):
            if now - stand.last_seen_at > self.params.grace_seconds:
                del self._stands[track_id]

        seen: dict[Any, Observation] = {}
        for zone in self.zones:
            members = standing.get(zone.name, [])
            classes = sorted({obj.class_name for obj, _, _ in members})
            if self.params.max_count == 0:
                for obj, stand, since in members:
                    seen[("vehicle", stand.key)] = Observation(
                        zone=zone,
                        bbox=obj.bbox,
                        confidence=obj.confidence,
                        since=since,
                        track_id=obj.track_id,
                        details={"mode": "vehicle", "count": len(members), "classes": classes,
                                 "vehicle_class": obj.class_name},
                    )  # fmt: skip
            elif len(members) > self.params.max_count:
                # The zone went over the limit when the (N+1)-th of these vehicles began to stand.
                since = sorted(s for _, _, s in members)[self.params.max_count]
                seen[("zone", zone.name)] = Observation(
                    zone=zone,
                    bbox=union_box([obj.bbox for obj, _, _ in members]),
                    confidence=sum(obj.confidence for obj, _, _ in members) / len(members),
                    since=since,
                    details={"mode": "count", "count": len(members), "max_count": self.params.max_count,
                             "classes": classes},
                )  # fmt: skip
        return seen

    def end_reason(self, key: Any) -> str:
        return "removed" if key[0] == "vehicle" else "cleared"

    # -- internals -------------------------------------------------------------------------

    def _still_people(self, frame: AnalysedFrame, now: float) -> list[TrackedObject]:
        """People who have stood still at least ATTEND_STILL_SECONDS (passers-by are moving)."""
        out = []
        for obj in frame.objects:
            if obj.family == "person":
                since = self._people.update(obj.track_id, obj.bbox, now)
                if now - since >= ATTEND_STILL_SECONDS:
                    out.append(obj)
        self._people.forget_stale(now)
        return out

    def _attends(self, person: TrackedObject, vehicle: TrackedObject) -> bool:
        """Whether a (still) person rides or holds the vehicle: their box covers enough of it and
        their feet are in its lower half (a person far behind it overlaps only in the picture)."""
        ratio = self.params.rider_overlap_ratio
        if ratio is None:
            return False
        vx1, vy1, vx2, vy2 = vehicle.bbox
        px1, py1, px2, py2 = person.bbox
        inter = max(0.0, min(vx2, px2) - max(vx1, px1)) * max(0.0, min(vy2, py2) - max(vy1, py1))
        area = max((vx2 - vx1) * (vy2 - vy1), 1.0)
        return inter >= ratio * area and py2 >= (vy1 + vy2) / 2

    def _stand_of(self, obj: TrackedObject, now: float, visible: set[int]) -> _Stand:
        """The vehicle's current stand: continued, re-found under a new id, or begun now."""
        ratio = self.params.max_movement_ratio
        stand = self._stands.get(obj.track_id) or self._adopt_lost_stand(obj, now, visible)
        if stand is not None and has_moved(obj.bbox, stand.anchor, stand.size, ratio):
            recently_adopted = now - stand.adopted_at <= self.params.grace_seconds
            previous = stand.previous_track_id
            if previous is not None and recently_adopted and previous not in self._stands:
                # A passing vehicle took over a lost stand and moved on: give it back.
                stand.track_id, stand.previous_track_id = previous, None
                self._stands[previous] = stand
            stand = None
        if stand is None:
            self._next_key += 1
            stand = _Stand(self._next_key, obj.track_id, anchor_point(obj.bbox), box_size(obj.bbox), now, now,
                           obj.bbox)  # fmt: skip
        stand.last_seen_at, stand.bbox = now, obj.bbox
        self._stands[obj.track_id] = stand
        return stand

    def _adopt_lost_stand(self, obj: TrackedObject, now: float, visible: set[int]) -> _Stand | None:
        """A stand whose track is not seen now, where this new track stands (the same vehicle, re-found
        by the tracker under a new id); None if there is none."""
        best_id, best_iou = None, self.params.rematch_iou
        for track_id, stand in self._stands.items():
            if track_id in visible or stand.last_seen_at >= now:
                continue
            if has_moved(obj.bbox, stand.anchor, stand.size, self.params.max_movement_ratio):
                continue
            iou = box_iou(stand.bbox, obj.bbox)
            if iou >= best_iou:
                best_id, best_iou = track_id, iou
        if best_id is None:
            return None
        stand = self._stands.pop(best_id)
        stand.previous_track_id, stand.adopted_at, stand.track_id = best_id, now, obj.track_id
        return stand
