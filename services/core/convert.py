"""Conversions between the typed configuration and the protobuf messages of retina.v1."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from retina.v1 import common_pb2

from algorithms.base import HandedOverIncident
from services.core.config import CameraConfig
from services.core.serving import to_timestamp


def camera_to_proto(camera: CameraConfig) -> common_pb2.Camera:
    """The gRPC Camera message for a validated camera."""
    data = camera.model_dump(mode="json", exclude_none=True)
    for algorithm in data["algorithms"]:
        for zone in algorithm["zones"]:
            zone["polygon"] = [{"x": x, "y": y} for x, y in zone["polygon"]]
    return json_format.ParseDict(data, common_pb2.Camera())


def camera_from_proto(message: common_pb2.Camera) -> dict[str, Any]:
    """A plain mapping of a Camera message, ready for ``validate_camera`` (unset fields omitted)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def open_incident_to_proto(incident: HandedOverIncident) -> common_pb2.OpenIncident:
    x1, y1, x2, y2 = incident.bbox
    return common_pb2.OpenIncident(
        id=incident.incident_id,
        algorithm=incident.algorithm,
        zone=incident.zone,
        revision=incident.revision,
        started_at=to_timestamp(incident.started_at),
        last_seen_at=to_timestamp(incident.last_seen_at),
        bbox=common_pb2.BBox(x1=x1, y1=y1, x2=x2, y2=y2),
        confidence=incident.confidence,
        track_id=incident.track_id,
    )


def open_incident_from_proto(message: common_pb2.OpenIncident) -> HandedOverIncident:
    b = message.bbox
    return HandedOverIncident(
        incident_id=message.id,
        algorithm=message.algorithm,
        zone=message.zone,
        revision=message.revision,
        started_at=message.started_at.ToNanoseconds() / 1e9,
        last_seen_at=message.last_seen_at.ToNanoseconds() / 1e9,
        bbox=(b.x1, b.y1, b.x2, b.y2),
        confidence=message.confidence,
        track_id=message.track_id,
    )
