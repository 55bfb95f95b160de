"""The contract: what a rule is (:class:`AlgorithmManifest`) and what it does (:class:`Algorithm`).

A plug-in author subclasses :class:`Algorithm`, sets ``manifest`` (name, version, parameter model,
the object families it needs) and implements ``process(frame) → events`` and ``finish``. The base
gives every rule the same helpers, so each thing is done one way: :meth:`Algorithm.zone_of` (the
zone holding an object's anchor), :meth:`Algorithm.relevant` (the size and shape filters),
:meth:`Algorithm.is_active` (active hours), and handover of open incidents between workers for
rules that keep their incidents in an :class:`~retina.algorithms.sdk.lifecycle.IncidentLifecycle`.
Rules of the form "a situation lasts ``dwell_seconds``" derive from
:class:`~retina.algorithms.sdk.dwell.DwellRule` instead and implement only ``observe``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from retina.algorithms.sdk.config import ActiveHours, AlgorithmSpec, Zone
from retina.algorithms.sdk.frames import (
    AnalysedFrame,
    CameraContext,
    HandedOverIncident,
    IncidentEvent,
    TrackedObject,
)
from retina.algorithms.sdk.geometry import anchor_point
from retina.algorithms.sdk.lifecycle import ended_handover

if TYPE_CHECKING:
    from retina.algorithms.sdk.lifecycle import IncidentLifecycle


@dataclass(frozen=True)
class AlgorithmManifest:
    """What a plug-in is: its name, version, parameter schema and the object families it needs."""

    name: str
    version: str
    params_model: type[BaseModel]
    families: frozenset[str]
    description: str
    requires_zones: bool = True


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

    def zone_of(self, frame: AnalysedFrame, bbox: tuple[float, float, float, float]) -> Zone | None:
        """The first of the rule's zones holding the box's anchor (bottom-centre)."""
        x, y = anchor_point(bbox)
        return next((z for z in self.zones if z.contains(x / frame.width, y / frame.height)), None)

    def relevant(self, frame: AnalysedFrame, obj: TrackedObject) -> bool:
        """Whether an object passes the size and shape filters of the rule's parameters:
        ``min_box_area_ratio`` (of the frame) and ``max_box_aspect_ratio`` (longer side / shorter
        side), each where the parameter model has it; a model with neither keeps every object."""
        w, h = obj.bbox[2] - obj.bbox[0], obj.bbox[3] - obj.bbox[1]
        if w * h < getattr(self.params, "min_box_area_ratio", 0.0) * frame.width * frame.height:
            return False
        limit = getattr(self.params, "max_box_aspect_ratio", None)
        return limit is None or max(w, h) <= limit * max(min(w, h), 1.0)

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
