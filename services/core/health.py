"""A camera's state: one enum for the worker that observes it, the registry that stores it, and the
wire (``retina.v1.CameraState``, whose ``CAMERA_STATE_<NAME>`` values mirror these members; see
:func:`retina.services.core.convert.camera_state_to_proto`)."""

from __future__ import annotations

from enum import StrEnum


class CameraState(StrEnum):
    """Where a camera's video source stands; the value is the word logs, metrics and the CLI show."""

    STARTING = "starting"  # assigned, connecting
    ONLINE = "online"  # frames arrive
    OFFLINE = "offline"  # cannot connect, or the stream ended or failed: reconnecting
    STALLED = "stalled"  # connected, but no frame for stall_seconds
    STOPPED = "stopped"  # released, or a file that ended
