"""Conversions between the typed configuration and the protobuf messages of retina.v1."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from retina.algorithms.sdk import HandedOverIncident
from retina.services.core.config import CameraConfig, ConfigError
from retina.services.core.features import TRACK_KEY_PATTERN
from retina.services.core.health import CameraState
from retina.services.core.serving import to_timestamp
from retina.services.core.validation import (
    InvalidArgument,
    check_number,
    check_text,
    check_timestamp,
    check_token,
    quote,
)
from retina.v1 import common_pb2, worker_pb2

MAX_LABEL_LENGTH = 64  # algorithm and zone names


def camera_to_proto(camera: CameraConfig, only_set: bool = False) -> common_pb2.Camera:
    """The gRPC Camera message for a validated camera (``only_set``: only the fields its source set,
    so the registry fills the others with the cluster's defaults)."""
    data = camera.model_dump(mode="json", exclude_none=True, exclude_unset=only_set)
    for algorithm in data.get("algorithms", []):
        for zone in algorithm.get("zones", []):
            zone["polygon"] = [{"x": x, "y": y} for x, y in zone["polygon"]]
    return json_format.ParseDict(data, common_pb2.Camera())


def camera_from_proto(message: common_pb2.Camera, prefix: str = "camera") -> dict[str, Any]:
    """A plain mapping of a Camera message, ready for ``validate_camera`` (unset fields omitted).

    Raises ConfigError (naming ``prefix``) for what JSON cannot hold: NaN or infinity in
    ``params``, or a ``params`` value with no kind set.
    """
    try:
        return json_format.MessageToDict(message, preserving_proto_field_name=True)
    except json_format.Error as exc:
        raise ConfigError(
            [f"{prefix}.algorithms: params must hold finite numbers and set values ({str(exc)[:200]})"]
        ) from None


_STATE_PREFIX = "CAMERA_STATE_"


def camera_state_to_proto(state: CameraState | str) -> int:
    """The wire value of a camera state (``"online"`` → ``CAMERA_STATE_ONLINE``)."""
    return worker_pb2.CameraState.Value(_STATE_PREFIX + CameraState(state).name)


def camera_state_from_proto(value: int) -> CameraState | None:
    """The camera state of a wire value; None for UNSPECIFIED or a value this version does not know."""
    if value not in worker_pb2.CameraState.values():
        return None
    return CameraState.__members__.get(worker_pb2.CameraState.Name(value).removeprefix(_STATE_PREFIX))


def camera_state_name(value: int) -> str:
    """The word for a CameraState wire value ("online", "stalled", ...); "unknown" for UNSPECIFIED or
    a value this version does not know."""
    state = camera_state_from_proto(value)
    return "unknown" if state is None else state.value


def check_track_key(value: str, field: str) -> str:
    """``value`` if empty or a feature-track key (``<camera>:<first seen ms>:<track id>``)."""
    if value and not TRACK_KEY_PATTERN.fullmatch(value):
        raise InvalidArgument(field, f"not a track key (<camera>:<ms>:<track id>), got {quote(value)}")
    return value


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
        track_key=incident.track_key or "",
    )


def open_incident_from_proto(message: common_pb2.OpenIncident, field: str = "incident") -> HandedOverIncident:
    """The handed-over incident of a message; raises InvalidArgument naming ``field`` and the bad part."""

    def unit(value: float, name: str) -> float:
        return check_number(value, f"{field}.{name}", minimum=0, maximum=1)

    b = message.bbox
    return HandedOverIncident(
        incident_id=check_token(message.id, f"{field}.id"),
        algorithm=check_text(
            message.algorithm, f"{field}.algorithm", max_length=MAX_LABEL_LENGTH, required=True
        ),
        zone=check_text(message.zone, f"{field}.zone", max_length=MAX_LABEL_LENGTH),
        revision=message.revision,
        started_at=check_timestamp(message.started_at, f"{field}.started_at"),
        last_seen_at=check_timestamp(message.last_seen_at, f"{field}.last_seen_at"),
        bbox=(unit(b.x1, "bbox.x1"), unit(b.y1, "bbox.y1"), unit(b.x2, "bbox.x2"), unit(b.y2, "bbox.y2")),
        confidence=unit(message.confidence, "confidence"),
        track_id=message.track_id,
        track_key=check_track_key(message.track_key, f"{field}.track_key") or None,
    )
