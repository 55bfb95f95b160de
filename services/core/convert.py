"""Conversions between the typed configuration and the protobuf messages of retina.v1."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from retina.v1 import common_pb2

from services.core.config import CameraConfig


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
