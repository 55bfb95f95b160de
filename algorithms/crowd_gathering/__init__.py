"""Crowd gathering (人群异常聚集): more than ``max_people`` people in a zone for ``dwell_seconds``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from retina.algorithms.sdk import (
    AlgorithmManifest,
    AnalysedFrame,
    DwellParams,
    DwellRule,
    Observation,
    union_box,
)


class CrowdGatheringParams(DwellParams):
    dwell_seconds: float = Field(default=60.0, gt=0, description="How long the crowd stays before an alert")
    max_people: int = Field(
        default=10, ge=1, description="Alert when MORE than this many people are in the zone"
    )
    grace_seconds: float = Field(
        default=5.0, ge=0, description="Short dips below the count do not end the crowd"
    )


class CrowdGathering(DwellRule):
    manifest = AlgorithmManifest(
        name="crowd_gathering",
        version="1.0.0",
        params_model=CrowdGatheringParams,
        families=frozenset({"person"}),
        description="More than max_people people stay in a zone longer than dwell_seconds",
    )
    params: CrowdGatheringParams

    def observe(self, frame: AnalysedFrame) -> dict[Any, Observation]:
        people: dict[str, list] = {}
        for obj in frame.objects:
            if obj.family == "person" and self.relevant(frame, obj):
                zone = self.zone_of(frame, obj.bbox)
                if zone is not None:
                    people.setdefault(zone.name, []).append(obj)
        seen = {}
        for zone in self.zones:
            crowd = people.get(zone.name, [])
            if len(crowd) > self.params.max_people:
                seen[zone.name] = Observation(
                    zone=zone,
                    bbox=union_box([p.bbox for p in crowd]),
                    confidence=sum(p.confidence for p in crowd) / len(crowd),
                    details={"people": len(crowd), "max_people": self.params.max_people},
                )
        return seen

    def end_reason(self, key: Any) -> str:
        return "dispersed"
