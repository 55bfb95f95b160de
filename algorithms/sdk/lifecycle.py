"""The incident lifecycle: one situation is one incident, told as ``new`` → ``update`` → ``end``.

A plug-in author who writes :meth:`Algorithm.process` directly keeps its incidents in an
:class:`IncidentLifecycle`: ``open`` a situation (the ``new`` event), ``observe`` it while it
lasts (``update`` events at ``update_interval_seconds`` or on clearly better evidence), ``close``
it (the ``end`` event). Incident ids are stable, and an incident open on the camera's previous
worker continues under its id when the rule sees the same situation again (handover).
:func:`ended_handover` is the ``end`` event of a handed-over incident that will not continue.
(:class:`~retina.algorithms.sdk.dwell.DwellRule` does all of this for dwell-gated rules.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from retina.algorithms.sdk.frames import EventKind, HandedOverIncident, IncidentEvent, Snapshot
from retina.algorithms.sdk.geometry import box_iou

if TYPE_CHECKING:
    from retina.algorithms.sdk.algorithm import AlgorithmManifest

INCIDENT_NAMESPACE = uuid.UUID("6f1c1f9e-2f4e-4d3b-9a57-0c7d1a1e5b21")


def ended_handover(incident: HandedOverIncident, version: str, reason: str) -> IncidentEvent:
    """The ``end`` event of a handed-over incident that will not continue (every field it has carries
    over to the event)."""
    carried = {f.name: getattr(incident, f.name) for f in fields(incident)}
    carried.update(revision=incident.revision + 1)
    return IncidentEvent(
        event="end",
        **carried,
        algorithm_version=version,
        ended_at=incident.last_seen_at,
        dwell_seconds=round(incident.last_seen_at - incident.started_at, 3),
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
            out.append(HandedOverIncident.from_event(self._event("update", incident)))
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

    def overlapping(self, zone: str, bbox: tuple[float, float, float, float], min_iou: float) -> list[Any]:
        """Keys of the incidents open in ``zone`` whose last box overlaps ``bbox`` (normalised) by at
        least ``min_iou``: a rule that must not raise two incidents for one object asks before
        opening another."""
        return [
            key
            for key, incident in self._open.items()
            if incident.zone == zone and box_iou(incident.bbox, bbox) >= min_iou
        ]

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
