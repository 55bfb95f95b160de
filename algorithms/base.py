"""The plug-in contract every urban-management rule implements, and the pieces rules share.

An algorithm is a class with a ``manifest`` (name, version, typed parameters, the object families
it needs) that consumes one :class:`AnalysedFrame` at a time — the shared detection and tracking
pass of a camera — and emits :class:`IncidentEvent` objects through the new → update → end
lifecycle of :class:`IncidentLifecycle`. Plug-ins are found through the ``retina.algorithms``
entry-point group, so a department can install its own package without touching ``services/``.
"""

from __future__ import annotations

import math
import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

ENTRY_POINT_GROUP = "retina.algorithms"
INCIDENT_NAMESPACE = uuid.UUID("6f1c1f9e-2f4e-4d3b-9a57-0c7d1a1e5b21")

EventKind = Literal["new", "update", "end"]

# ---------------------------------------------------------------------------------------------
# The rules every configuration model follows
# ---------------------------------------------------------------------------------------------

MAX_DURATION_SECONDS = 7 * 24 * 3600
DURATION_SUFFIX = "_seconds"


class ConfigModel(BaseModel):
    """Base of every configuration model: the cluster's sections and the plug-ins' parameters.

    One rule set for all of them: unknown keys are errors; every number must be finite (NaN and
    infinity are refused, also as the strings "nan" and "inf"); every duration — a field named
    ``*_seconds`` — is at most :data:`MAX_DURATION_SECONDS` (7 days), whatever its own bounds.
    Plug-in parameter models that do not derive from it get the same rules when validated
    (:func:`validate_algorithm_params`).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _bounded_duration(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if name.endswith(DURATION_SUFFIX) and isinstance(value, int | float) and value > MAX_DURATION_SECONDS:
            raise ValueError(f"must be at most {MAX_DURATION_SECONDS} s (7 days), got {value:g}")
        return value


def error_location(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``prefix.zones[0].polygon`` for a pydantic error location. Keys that are not short identifiers
    (an unknown key can be anything) are shown as a short, truncated repr."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith("function-"):  # a validator's name, not a field
            name = part if part.isidentifier() and len(part) <= 64 else _short_repr(part)
            path += f".{name}" if path else name
    return path


def _short_repr(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def error_message(item: ErrorDetails) -> str:
    """The admin-facing message of one pydantic error (never the whole bad value)."""
    if item["type"] == "finite_number":
        return "must be a finite number (not NaN or infinity)"
    message = item["msg"]
    for noise in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(noise)
    return message


@cache
def with_config_rules(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` itself if it is a :class:`ConfigModel`, else a subclass of it that follows the rules."""
    if issubclass(model, ConfigModel):
        return model
    # The plug-in's own settings (say extra="allow") win, except that numbers stay finite.
    config = {**ConfigModel.model_config, **model.model_config, "allow_inf_nan": False}
    namespace = {"__module__": model.__module__, "model_config": config}
    return type(model.__name__, (model, ConfigModel), namespace)


# ---------------------------------------------------------------------------------------------
# Configuration pieces shared by every algorithm
# ---------------------------------------------------------------------------------------------


def parse_local_time(value: str) -> time:
    """Parse "HH:MM" into a time; raises ValueError with an actionable message."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{value!r} is not a time of day; use HH:MM, e.g. 07:00")
    return time(int(match[1]), int(match[2]))


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ActiveHours(ConfigModel):
    """Local hours (and optionally weekdays) in which a rule raises new incidents.

    ``end`` before ``start`` wraps past midnight; ``start == end`` means all day. ``days`` limits
    the rule to those weekdays (of the day the period starts on).
    """

    start: str = Field(max_length=8)
    end: str = Field(max_length=8)
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        parse_local_time(value)
        return value

    def contains(self, moment: datetime) -> bool:
        """Whether a timezone-aware moment falls inside the hours (in the moment's own timezone)."""
        start, end, now = parse_local_time(self.start), parse_local_time(self.end), moment.time()
        weekday = moment.weekday()
        if start == end:
            inside = True
        elif start < end:
            inside = start <= now < end
        else:
            inside = now >= start or now < end
            if now < end:  # the small hours belong to the period that began the evening before
                weekday = (weekday - 1) % 7
        return inside and (self.days is None or WEEKDAYS[weekday] in self.days)


class Zone(ConfigModel):
    """A named polygon in normalised image coordinates (0..1, origin top-left)."""

    name: str = Field(min_length=1, max_length=64)
    polygon: list[tuple[float, float]] = Field(max_length=1000, description="At most 1000 points")

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        if not name.isprintable():
            raise ValueError("must be printable text on one line (it is shown to dispatchers)")
        return name

    @field_validator("polygon", mode="before")
    @classmethod
    def _points(cls, value: Any) -> Any:
        # Accept [[x, y], ...] (YAML) and [{x:, y:}, ...] (gRPC, which omits zero coordinates).
        if isinstance(value, list):
            return [(p.get("x", 0.0), p.get("y", 0.0)) if isinstance(p, dict) else p for p in value]
        return value

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(points) < 3:
            raise ValueError("needs at least 3 points")
        for i, (x, y) in enumerate(points):
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise ValueError(
                    f"point {i} ({x}, {y}) is outside the image; use normalised coordinates from 0 to 1"
                )
        if polygon_area(points) < 1e-6:
            raise ValueError("has no area (are the points on one line?)")
        return points

    def contains(self, x: float, y: float) -> bool:
        """Whether the normalised point lies inside the polygon (ray casting)."""
        return point_in_polygon(x, y, self.polygon)


def polygon_area(points: list[tuple[float, float]]) -> float:
    """Absolute area of a simple polygon (shoelace formula)."""
    area = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        area += x1 * y2 - x2 * y1
    return abs(area) / 2


def point_in_polygon(x: float, y: float, points: list[tuple[float, float]]) -> bool:
    """Ray-casting point-in-polygon test."""
    inside = False
    n = len(points)
    for i in range(n):
        x1, y1 = points[i]
        x2, y2 = points[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross_x:
                inside = not inside
    return inside


def anchor_point(bbox: tuple[float, float, float, float]) -> tuple[float, float]:
    """Where an object stands: the bottom-centre of its box (pixels)."""
    return ((bbox[0] + bbox[2]) / 2, bbox[3])


def box_size(bbox: tuple[float, float, float, float]) -> float:
    """A box's linear size, sqrt(area), in pixels."""
    return math.sqrt(max(bbox[2] - bbox[0], 1.0) * max(bbox[3] - bbox[1], 1.0))


def union_box(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    """The smallest box holding every box."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


class StillnessTracker:
    """How long each track has stood still: its anchor within ``max_movement_ratio`` of its size.

    ``update`` returns the moment the current still period began; a larger move restarts it.
    Tracks unseen for ``forget_seconds`` are forgotten.
    """

    def __init__(self, max_movement_ratio: float, forget_seconds: float):
        self.max_movement_ratio = max_movement_ratio
        self.forget_seconds = forget_seconds
        self._still: dict[
            int, tuple[tuple[float, float], float, float, float]
        ] = {}  # anchor, size, since, seen

    def update(self, track_id: int, bbox: tuple[float, float, float, float], now: float) -> float:
        x, y = anchor_point(bbox)
        entry = self._still.get(track_id)
        if entry is not None:
            (ax, ay), size, since, _ = entry
            if math.hypot(x - ax, y - ay) <= self.max_movement_ratio * size:
                self._still[track_id] = ((ax, ay), size, since, now)
                return since
        self._still[track_id] = ((x, y), box_size(bbox), now, now)
        return now

    def forget_stale(self, now: float) -> None:
        for track_id, (_, _, _, seen) in list(self._still.items()):
            if now - seen > self.forget_seconds:
                del self._still[track_id]


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class AlgorithmSpec(ConfigModel):
    """One algorithm enabled on a camera, as written in the configuration."""

    name: str = Field(max_length=64)
    zones: list[Zone] = Field(default_factory=list, max_length=100, description="At most 100 zones")
    params: dict[str, Any] = Field(default_factory=dict)
    active_hours: ActiveHours | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        known = available_algorithms()
        if name not in known:
            raise ValueError(f"unknown algorithm {name!r} (installed: {', '.join(sorted(known)) or 'none'})")
        return name

    @field_validator("active_hours", mode="before")
    @classmethod
    def _empty_hours(cls, value: Any) -> Any:
        # An unset ActiveHours arrives from the gRPC Camera message as {} or {start: "", end: ""}.
        if isinstance(value, dict) and not any(value.values()):
            return None
        return value

    @model_validator(mode="after")
    def _unique_zones(self) -> AlgorithmSpec:
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ValueError("zone names must be unique within an algorithm")
        return self


# ---------------------------------------------------------------------------------------------
# What an algorithm consumes and emits
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackedObject:
    """One tracked detection in a frame. ``bbox`` is in pixels (x1, y1, x2, y2)."""

    track_id: int
    family: str  # "vehicle", "person", or the detector's class name for other classes
    class_name: str
    confidence: float
    bbox: tuple[float, float, float, float]


@dataclass
class AnalysedFrame:
    """One sampled frame of a camera after the shared detection and tracking pass."""

    camera_id: str
    timestamp: float  # seconds since the epoch, derived from stream timestamps
    image: np.ndarray  # BGR
    objects: list[TrackedObject]

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


@dataclass(frozen=True)
class AlgorithmManifest:
    """What a plug-in is: its name, version, parameter schema and the object families it needs."""

    name: str
    version: str
    params_model: type[BaseModel]
    families: frozenset[str]
    description: str
    requires_zones: bool = True


@dataclass(frozen=True)
class CameraContext:
    """The facts about its camera an algorithm may use."""

    camera_id: str
    timezone: ZoneInfo


class Algorithm(ABC):
    """Base class of every rule. Subclasses set ``manifest`` and implement ``process``."""

    manifest: ClassVar[AlgorithmManifest]

    def __init__(
        self, camera: CameraContext, zones: list[Zone], params: BaseModel, active_hours: ActiveHours | None
    ):
        self.camera = camera
        self.zones = zones
        self.params = params
        self.active_hours = active_hours

    @classmethod
    def from_spec(cls, camera: CameraContext, spec: AlgorithmSpec) -> Algorithm:
        """Build the algorithm from a validated spec (parameters are validated again, cheaply)."""
        params = cls.manifest.params_model.model_validate(spec.params)
        return cls(camera, spec.zones, params, spec.active_hours)

    def is_active(self, timestamp: float) -> bool:
        """Whether the rule may open incidents at this moment (its active hours, camera timezone)."""
        if self.active_hours is None:
            return True
        return self.active_hours.contains(datetime.fromtimestamp(timestamp, self.camera.timezone))

    @abstractmethod
    def process(self, frame: AnalysedFrame) -> list[IncidentEvent]:
        """Consume one analysed frame; return the incident events it causes (often none)."""

    @abstractmethod
    def finish(self, timestamp: float, reason: str) -> list[IncidentEvent]:
        """End every open incident (end of a file, camera removed); return the end events."""

    # -- a camera moving between workers ---------------------------------------------------------

    lifecycle: IncidentLifecycle | None = None  # rules built on IncidentLifecycle get handover for free

    def handover_seconds(self) -> float:
        """How long a handed-over incident waits to be confirmed again before it ends as ``lost``."""
        return 120.0

    def resume(self, incidents: list[HandedOverIncident]) -> list[IncidentEvent]:
        """Continue incidents this rule had open on the camera's previous worker.

        Each continues under its id (next event: ``update``) once the rule confirms the same
        situation again; rules without an :class:`IncidentLifecycle` end them at once (returned).
        """
        if self.lifecycle is not None:
            self.lifecycle.resume(incidents, self.handover_seconds())
            return []
        return [ended_handover(incident, self.manifest.version, "moved") for incident in incidents]

    def hand_over(self) -> list[HandedOverIncident]:
        """Give up the open incidents without ending them (the camera moves to another worker)."""
        if self.lifecycle is None:
            return []
        incidents = self.lifecycle.handover()
        self.lifecycle.drop_all()
        return incidents

    def expire_handovers(self, timestamp: float) -> list[IncidentEvent]:
        """End handed-over incidents not confirmed in time (called once per frame)."""
        return self.lifecycle.expire_handovers(timestamp) if self.lifecycle is not None else []


# ---------------------------------------------------------------------------------------------
# Incident lifecycle shared by all algorithms
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandedOverIncident:
    """An incident open on the camera's previous worker (it moved, or that worker died)."""

    incident_id: str
    algorithm: str
    zone: str
    revision: int
    started_at: float
    last_seen_at: float
    bbox: tuple[float, float, float, float]  # normalised
    confidence: float
    track_id: int


def ended_handover(incident: HandedOverIncident, version: str, reason: str) -> IncidentEvent:
    """The ``end`` event of a handed-over incident that will not continue."""
    return IncidentEvent(
        event="end",
        incident_id=incident.incident_id,
        revision=incident.revision + 1,
        algorithm=incident.algorithm,
        algorithm_version=version,
        zone=incident.zone,
        started_at=incident.started_at,
        last_seen_at=incident.last_seen_at,
        ended_at=incident.last_seen_at,
        dwell_seconds=round(incident.last_seen_at - incident.started_at, 3),
        bbox=incident.bbox,
        confidence=incident.confidence,
        track_id=incident.track_id,
        end_reason=reason,
    )


@dataclass
class _OpenIncident:
    incident_id: str
    zone: str
    track_id: int
    started_at: float
    last_seen_at: float
    bbox: tuple[float, float, float, float]
    confidence: float
    best_confidence: float
    last_emitted_at: float
    revision: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class IncidentLifecycle:
    r"""Opens, updates and ends incidents so each situation is one incident with new/update/end events.

    An update is emitted when ``update_interval_seconds`` of stream time has passed since the last
    event, or when clearly better evidence (confidence up by ``better_snapshot_margin``) appears.

    Handover: incidents :meth:`resume`\ d from the camera's previous worker are adopted by the next
    :meth:`open` in the same zone whose box overlaps theirs (IoU ≥ ``HANDOVER_IOU``): it keeps their
    id and start and continues with an ``update``, so dispatchers see one incident, not two.
    """

    HANDOVER_IOU = 0.3

    def __init__(
        self,
        camera_id: str,
        manifest: AlgorithmManifest,
        update_interval_seconds: float,
        better_snapshot_margin: float = 0.1,
    ):
        self.camera_id = camera_id
        self.manifest = manifest
        self.update_interval_seconds = update_interval_seconds
        self.better_snapshot_margin = better_snapshot_margin
        self._open: dict[Any, _OpenIncident] = {}
        self._handed_over: dict[str, tuple[HandedOverIncident, float | None]] = {}  # id → (it, deadline)
        self._handover_seconds = 120.0

    def resume(self, incidents: list[HandedOverIncident], within_seconds: float) -> None:
        """Wait up to ``within_seconds`` (of stream time, from the next frame) to adopt these."""
        self._handover_seconds = within_seconds
        open_ids = {incident.incident_id for incident in self._open.values()}
        for incident in incidents:  # one already continued or waiting here is not taken twice
            if incident.incident_id not in open_ids and incident.incident_id not in self._handed_over:
                self._handed_over[incident.incident_id] = (incident, None)

    def handover(self) -> list[HandedOverIncident]:
        """The open incidents (and those still waiting for adoption), for the next worker."""
        out = [incident for incident, _ in self._handed_over.values()]
        for incident in self._open.values():
            out.append(
                HandedOverIncident(
                    incident.incident_id, self.manifest.name, incident.zone, incident.revision,
                    incident.started_at, incident.last_seen_at, incident.bbox, incident.confidence,
                    incident.track_id,
                )
            )  # fmt: skip
        return out

    def expire_handovers(self, now: float) -> list[IncidentEvent]:
        """End handed-over incidents that were not confirmed again in time (``lost``)."""
        events = []
        for incident_id, (incident, deadline) in list(self._handed_over.items()):
            if deadline is None:
                self._handed_over[incident_id] = (incident, now + self._handover_seconds)
            elif now > deadline:
                del self._handed_over[incident_id]
                events.append(ended_handover(incident, self.manifest.version, "lost"))
        return events

    def _adopt(self, zone: str, bbox: tuple[float, float, float, float]) -> HandedOverIncident | None:
        best, best_iou = None, self.HANDOVER_IOU
        for incident, _ in self._handed_over.values():
            iou = box_iou(incident.bbox, bbox)
            if incident.zone == zone and iou >= best_iou:
                best, best_iou = incident, iou
        if best is not None:
            del self._handed_over[best.incident_id]
        return best

    def is_open(self, key: Any) -> bool:
        return key in self._open

    def open_keys(self) -> list[Any]:
        return list(self._open)

    def make_id(self, zone: str, track_id: int, started_at: float, opened_at: float) -> str:
        """A stable id for one situation: the same stream gives the same ids, two situations never
        share one (a situation that ends and comes back opens at another moment)."""
        name = (
            f"{self.camera_id}/{self.manifest.name}/{zone}/{track_id}/"
            f"{round(started_at * 1000)}/{round(opened_at * 1000)}"
        )
        return str(uuid.uuid5(INCIDENT_NAMESPACE, name))

    def open(
        self,
        key: Any,
        *,
        zone: str,
        track_id: int,
        started_at: float,
        now: float,
        bbox: tuple[float, float, float, float],
        confidence: float,
        snapshot: Snapshot,
        snapshot_confidence: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> IncidentEvent:
        """Open an incident and return its ``new`` event (``snapshot`` taken at ``snapshot_confidence``).

        If it is an incident handed over by the camera's previous worker, it continues instead: same
        id and start, and the event is an ``update``.
        """
        adopted = self._adopt(zone, bbox)
        incident = _OpenIncident(
            incident_id=self.make_id(zone, track_id, started_at, now),
            zone=zone,
            track_id=track_id,
            started_at=started_at,
            last_seen_at=now,
            bbox=bbox,
            confidence=confidence,
            best_confidence=snapshot_confidence if snapshot_confidence is not None else confidence,
            last_emitted_at=now,
            details=dict(details or {}),
        )
        self._open[key] = incident
        if adopted is not None:
            incident.incident_id = adopted.incident_id
            incident.started_at = min(adopted.started_at, started_at)
            incident.revision = adopted.revision + 1
            return self._event("update", incident, snapshot=snapshot)
        return self._event("new", incident, snapshot=snapshot)

    def observe(
        self,
        key: Any,
        *,
        now: float,
        bbox: tuple[float, float, float, float],
        confidence: float,
        snapshot: Snapshot | None = None,
        details: dict[str, Any] | None = None,
    ) -> IncidentEvent | None:
        """Record that the situation continues; return an ``update`` event when one is due."""
        incident = self._open[key]
        incident.last_seen_at = now
        incident.bbox = bbox
        incident.confidence = confidence
        if details:
            incident.details.update(details)
        # Better evidence: the rule offers a new best snapshot, clearly better than the one sent.
        better = snapshot is not None and confidence >= incident.best_confidence + self.better_snapshot_margin
        due = now - incident.last_emitted_at >= self.update_interval_seconds
        if not (better or due):
            return None
        if better:
            incident.best_confidence = confidence
        incident.revision += 1
        incident.last_emitted_at = now
        return self._event("update", incident, snapshot=snapshot if better else None)

    def close(self, key: Any, *, ended_at: float, reason: str) -> IncidentEvent:
        """End an incident and return its ``end`` event."""
        incident = self._open.pop(key)
        incident.revision += 1
        return self._event("end", incident, ended_at=ended_at, end_reason=reason)

    def close_all(self, *, ended_at: float, reason: str) -> list[IncidentEvent]:
        """End every open incident, and every handed-over one still waiting."""
        version = self.manifest.version
        waiting = [ended_handover(incident, version, reason) for incident, _ in self._handed_over.values()]
        self._handed_over.clear()
        return waiting + [self.close(key, ended_at=ended_at, reason=reason) for key in list(self._open)]

    def drop_all(self) -> None:
        """Forget every incident without ending it (the camera moves; the next worker continues)."""
        self._open.clear()
        self._handed_over.clear()

    def _event(
        self,
        kind: EventKind,
        incident: _OpenIncident,
        *,
        snapshot: Snapshot | None = None,
        ended_at: float | None = None,
        end_reason: str | None = None,
    ) -> IncidentEvent:
        return IncidentEvent(
            event=kind,
            incident_id=incident.incident_id,
            revision=incident.revision,
            algorithm=self.manifest.name,
            algorithm_version=self.manifest.version,
            zone=incident.zone,
            started_at=incident.started_at,
            last_seen_at=incident.last_seen_at,
            ended_at=ended_at,
            dwell_seconds=round((ended_at or incident.last_seen_at) - incident.started_at, 3),
            bbox=incident.bbox,
            confidence=round(incident.confidence, 4),
            track_id=incident.track_id,
            end_reason=end_reason,
            details=dict(incident.details),
            snapshot=snapshot,
        )


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------


@cache
def available_algorithms() -> dict[str, type[Algorithm]]:
    """Every installed algorithm plug-in, by name (entry-point group ``retina.algorithms``)."""
    found: dict[str, type[Algorithm]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
            raise TypeError(f"entry point {entry.name!r} ({entry.value}) is not an Algorithm subclass")
        found[cls.manifest.name] = cls
    return found


def validate_algorithm_params(spec: AlgorithmSpec) -> list[str]:
    """Check a spec against its plug-in's manifest; return ``field: message`` lines (empty if valid)."""
    cls = available_algorithms()[spec.name]
    errors: list[str] = []
    try:
        with_config_rules(cls.manifest.params_model).model_validate(spec.params)
    except ValidationError as exc:
        for item in exc.errors():
            path = error_location(item["loc"])
            message = error_message(item)
            if item["type"] == "extra_forbidden":
                message = f"unknown parameter for {spec.name} (check the spelling)"
            errors.append(f"params.{path}: {message}")
    if cls.manifest.requires_zones and not spec.zones:
        errors.append(f"zones: {spec.name} needs at least one zone")
    return errors


# ---------------------------------------------------------------------------------------------
# Rules of the form "a situation that lasts longer than dwell_seconds"
# ---------------------------------------------------------------------------------------------


class DwellParams(ConfigModel):
    """Parameters every dwell-gated rule shares (seconds of stream time, each at most 7 days)."""

    dwell_seconds: float = Field(
        default=60.0, gt=0, description="How long the situation lasts before an alert"
    )
    grace_seconds: float = Field(
        default=10.0, ge=0, description="Gaps shorter than this (occlusion, detector misses) do not end it"
    )
    update_interval_seconds: float = Field(default=60.0, gt=0, description="Interval of update events")
    cooldown_seconds: float = Field(
        default=0.0,
        ge=0,
        description="After an incident in a zone ends, no new one opens there for this long",
    )
    min_box_area_ratio: float = Field(
        default=0.0003, ge=0, lt=1, description="Ignore objects smaller than this fraction of the frame"
    )
    max_box_aspect_ratio: float | None = Field(
        default=None, gt=1, description="Ignore boxes more elongated than this (longer side / shorter side)"
    )


@dataclass
class Observation:
    """One situation seen in a frame, as a dwell-gated rule reports it (boxes in pixels)."""

    zone: Zone
    bbox: tuple[float, float, float, float]
    confidence: float
    since: float | None = None  # when it began, if the rule knows it began before this frame
    track_id: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Episode:
    started_at: float
    last_seen_at: float
    best_confidence: float
    best_snapshot: Snapshot


class DwellRule(Algorithm):
    """Base of rules that alert when a situation lasts ``dwell_seconds``.

    Subclasses implement :meth:`observe`, returning the situations present in a frame keyed by a
    stable key (a zone name, a static object's id). This class turns them into one incident per
    episode: ``new`` once the episode has lasted the dwell (inside active hours), ``update`` as it
    goes on, ``end`` when it has not been seen for ``grace_seconds``.
    """

    params: DwellParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lifecycle = IncidentLifecycle(
            self.camera.camera_id, self.manifest, self.params.update_interval_seconds
        )
        self._episodes: dict[Any, _Episode] = {}
        self._zone_quiet_until: dict[str, float] = {}  # per-zone cooldown after an incident ends

    @abstractmethod
    def observe(self, frame: AnalysedFrame) -> dict[Any, Observation]:
        """The situations present in this frame, by key."""

    def end_reason(self, key: Any) -> str:
        """Why an episode that is no longer seen ended (shown to dispatchers)."""
        return "cleared"

    def relevant(self, frame: AnalysedFrame, obj: TrackedObject) -> bool:
        """Whether an object passes the size and shape filters (``min_box_area_ratio``,
        ``max_box_aspect_ratio``)."""
        w, h = obj.bbox[2] - obj.bbox[0], obj.bbox[3] - obj.bbox[1]
        if w * h < self.params.min_box_area_ratio * frame.width * frame.height:
            return False
        limit = self.params.max_box_aspect_ratio
        return limit is None or max(w, h) <= limit * max(min(w, h), 1.0)

    def zone_of(self, frame: AnalysedFrame, bbox: tuple[float, float, float, float]) -> Zone | None:
        """The first zone holding the box's anchor (bottom-centre)."""
        x, y = anchor_point(bbox)
        return next((z for z in self.zones if z.contains(x / frame.width, y / frame.height)), None)

    def process(self, frame: AnalysedFrame) -> list[IncidentEvent]:
        now = frame.timestamp
        events: list[IncidentEvent] = []
        for key, seen in self.observe(frame).items():
            episode = self._episodes.get(key)
            if episode is None:
                snapshot = Snapshot(frame.image, seen.bbox, seen.zone.polygon, now)
                episode = _Episode(min(seen.since or now, now), now, seen.confidence, snapshot)
                self._episodes[key] = episode
            episode.last_seen_at = now
            better = None
            if seen.confidence > episode.best_confidence:
                episode.best_confidence = seen.confidence
                episode.best_snapshot = better = Snapshot(frame.image, seen.bbox, seen.zone.polygon, now)
            bbox = frame.normalise(seen.bbox)
            if self.lifecycle.is_open(key):
                event = self.lifecycle.observe(
                    key, now=now, bbox=bbox, confidence=seen.confidence, snapshot=better, details=seen.details
                )
                if event:
                    events.append(event)
            elif (
                now - episode.started_at >= self.params.dwell_seconds
                and self.is_active(now)
                and now >= self._zone_quiet_until.get(seen.zone.name, 0.0)
            ):
                events.append(
                    self.lifecycle.open(
                        key,
                        zone=seen.zone.name,
                        track_id=seen.track_id,
                        started_at=episode.started_at,
                        now=now,
                        bbox=bbox,
                        confidence=seen.confidence,
                        snapshot=episode.best_snapshot,
                        snapshot_confidence=episode.best_confidence,
                        details=seen.details,
                    )
                )
        for key, episode in list(self._episodes.items()):
            if now - episode.last_seen_at > self.params.grace_seconds:
                del self._episodes[key]
                if self.lifecycle.is_open(key):
                    end = self.lifecycle.close(
                        key, ended_at=episode.last_seen_at, reason=self.end_reason(key)
                    )
                    self._zone_quiet_until[end.zone] = now + self.params.cooldown_seconds
                    events.append(end)
        return events

    def finish(self, timestamp: float, reason: str) -> list[IncidentEvent]:
        self._episodes.clear()
        return self.lifecycle.close_all(ended_at=timestamp, reason=reason)

    def handover_seconds(self) -> float:
        # The situation must be seen again for a whole dwell before it is confirmed.
        return self.params.dwell_seconds + self.params.grace_seconds + 60
