"""Dwell-gated rules: "a situation that lasts longer than ``dwell_seconds``" with one method.

A plug-in author whose rule has that form derives from :class:`DwellRule`, takes
:class:`DwellParams` as the base of its parameter model, and implements only ``observe(frame)``:
the situations present in this frame, keyed by a stable key, each an :class:`Observation`.
:class:`DwellRule` turns them into incidents — one per episode, opened once it has lasted the
dwell inside active hours, updated as it goes on, ended after ``grace_seconds`` unseen, with an
optional per-zone ``cooldown_seconds`` — and filters objects by ``min_box_area_ratio`` and
``max_box_aspect_ratio`` through :meth:`~retina.algorithms.sdk.algorithm.Algorithm.relevant`.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from retina.algorithms.sdk.algorithm import Algorithm
from retina.algorithms.sdk.config import ConfigModel, Zone
from retina.algorithms.sdk.frames import AnalysedFrame, IncidentEvent, Snapshot
from retina.algorithms.sdk.lifecycle import IncidentLifecycle


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
