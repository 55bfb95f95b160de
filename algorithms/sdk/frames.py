"""Frames and events: what a rule consumes and what it emits.

A plug-in author finds here the input — :class:`AnalysedFrame` (one sampled frame of a camera
after the shared detection and tracking pass, holding one :class:`TrackedObject` per tracked
detection, and the camera's :class:`ReferenceView` where it has one) and :class:`CameraContext`
(the camera's id and timezone) — and the output:
:class:`IncidentEvent` (one ``new``/``update``/``end`` event of an incident) with its evidence
:class:`Snapshot`.
:class:`HandedOverIncident` is an incident that continues from the camera's previous worker: its
fields are a subset of :class:`IncidentEvent`'s (same names, same meaning), and it is derived from
one with :meth:`HandedOverIncident.from_event`.
Pixel boxes are ``(x1, y1, x2, y2)``; an event's ``bbox`` is normalised (0..1).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

EventKind = Literal["new", "update", "end"]


# What kind of road user a detector class is — one meaning everywhere: the tracker follows a family
# as one object (class flicker car ↔ truck does not break a track), rules and search filter by it.
# Motorcycles are non-motor: on Chinese streets they are mostly e-bikes and scooters (非机动车).
FAMILY_OF_CLASS: dict[str, str] = {
    "person": "person",
    "car": "vehicle",
    "truck": "vehicle",
    "bus": "vehicle",
    "motorcycle": "non_motor",
    "bicycle": "non_motor",
}


def family_of(class_name: str) -> str:
    """The family of a detector class (``FAMILY_OF_CLASS``); other classes are their own family."""
    return FAMILY_OF_CLASS.get(class_name, class_name)


@dataclass(frozen=True)
class TrackedObject:
    """One tracked detection in a frame. ``bbox`` is in pixels (x1, y1, x2, y2)."""

    track_id: int
    family: str  # family_of(class_name): "person", "vehicle", "non_motor", or the class name
    class_name: str
    confidence: float
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class ReferenceView:
    """The camera's reference view from the camera registry (一机一档): what it looks at when clean.

    ``confirmed``: ops took it of the clean scene (``retina cameras reference``); otherwise the
    quality monitor took the camera's first clean picture, which may already show litter.
    """

    image: np.ndarray  # grey, uint8, its own size (scale it to the frame's)
    captured_at: float  # epoch seconds
    confirmed: bool


@dataclass
class AnalysedFrame:
    """One sampled frame of a camera after the shared detection and tracking pass."""

    camera_id: str
    timestamp: float  # seconds since the epoch, derived from stream timestamps
    image: np.ndarray  # BGR
    objects: list[TrackedObject]
    reference: ReferenceView | None = None  # the camera's reference view, where it has one

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    def normalise(self, bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A pixel box in normalised coordinates, clipped to the image."""
        w, h = self.width, self.height
        x1, y1, x2, y2 = bbox
        return (
            min(max(x1 / w, 0.0), 1.0),
            min(max(y1 / h, 0.0), 1.0),
            min(max(x2 / w, 0.0), 1.0),
            min(max(y2 / h, 0.0), 1.0),
        )


@dataclass
class Snapshot:
    """Evidence for an incident: the frame, the object's pixel box and the zone it was in."""

    image: np.ndarray
    bbox: tuple[float, float, float, float]
    zone_polygon: list[tuple[float, float]]
    timestamp: float


@dataclass
class IncidentEvent:
    """One lifecycle event of an incident, as an algorithm emits it (the worker adds camera facts)."""

    event: EventKind
    incident_id: str
    revision: int
    algorithm: str
    algorithm_version: str
    zone: str
    started_at: float
    last_seen_at: float
    ended_at: float | None
    dwell_seconds: float
    bbox: tuple[float, float, float, float]  # normalised
    confidence: float
    track_id: int
    end_reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    snapshot: Snapshot | None = None  # set when the evidence is new or better than before
    # Set by the worker, not the rule: the key of the object's feature track (search by image),
    # ``<camera id>:<first seen ms>:<track id>``; None where the object has no feature track.
    track_key: str | None = None
    # Set by the worker, not the rule: the camera's video-quality problems when the event was made
    # ("blur", "dark", ...; see retina.services.core.quality); empty for a clean picture.
    camera_quality: list[str] = field(default_factory=list)
    # Set by the worker, not the rule: the licence plate read on the object's track, with its crop
    # (a retina.services.core.plate_text.PlateEvidence); None where plates are off or none was read.
    plate: Any = None


@dataclass(frozen=True)
class CameraContext:
    """The facts about its camera an algorithm may use."""

    camera_id: str
    timezone: ZoneInfo


@dataclass(frozen=True)
class HandedOverIncident:
    """An incident open on the camera's previous worker (it moved, or that worker died).

    Every field is the :class:`IncidentEvent` field of the same name, as of the last event published.
    """

    incident_id: str
    algorithm: str
    zone: str
    revision: int
    started_at: float
    last_seen_at: float
    bbox: tuple[float, float, float, float]  # normalised
    confidence: float
    track_id: int
    track_key: str | None = None

    @classmethod
    def from_event(cls, event: IncidentEvent) -> HandedOverIncident:
        """The incident as its last event ``event`` left it."""
        return cls(**{f.name: getattr(event, f.name) for f in fields(cls)})
