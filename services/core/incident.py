"""The incident message (schema ``retina.incident/1``): what dispatch receives on NATS.

One incident is one situation (one vehicle's stay in a zone). Its ``id`` is stable for the whole
situation, so re-delivery is idempotent; each event (``new``, ``update``…, ``end``) carries a
``revision`` that grows by one. JetStream de-duplicates on ``Nats-Msg-Id = id:event:revision``.
The checked-in JSON Schema (``incident.schema.json``) is generated from :class:`IncidentMessage`.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from retina.algorithms.sdk import IncidentEvent, Snapshot
from retina.services.core.config import CameraConfig

SCHEMA_ID = "retina.incident/1"
SCHEMA_PATH = Path(__file__).with_name("incident.schema.json")
SUBJECT_PREFIX = "retina.incidents"
THUMBNAIL_WIDTH = 192


class BBox(BaseModel):
    """Normalised box: fractions of the image width and height, origin top-left."""

    x1: float
    y1: float
    x2: float
    y2: float


class Location(BaseModel):
    lat: float
    lon: float


class SnapshotRef(BaseModel):
    """Where the evidence JPEG is: ``path`` in the incident store's media folder (and its HTTP/gRPC
    views), ``object`` in the JetStream object store the worker uploaded it to."""

    path: str
    object: str
    width: int
    height: int
    thumbnail_jpeg_base64: str = Field(description=f"JPEG, {THUMBNAIL_WIDTH} px wide, base64")


class ClipRef(BaseModel):
    """The evidence clip (MP4, cut from the camera's own stream without re-encoding) around the
    moment the incident opened. It is uploaded a few seconds after the ``new`` event, once the
    stream has passed ``end``; ``path`` is where the incident store keeps it."""

    path: str
    object: str
    start: datetime
    end: datetime


class IncidentMessage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    schema_id: Literal["retina.incident/1"] = Field(default=SCHEMA_ID, alias="schema")
    id: str = Field(description="Stable for the whole situation (one vehicle stay)")
    event: Literal["new", "update", "end"]
    revision: int = Field(ge=0, description="0 for new, +1 for each later event of the same id")
    camera_id: str
    camera_name: str
    department: str
    location: Location | None
    algorithm: str
    algorithm_version: str
    zone: str
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    dwell_seconds: float
    bbox: BBox
    confidence: float
    track_id: int
    end_reason: str | None = Field(
        default=None, description="left_zone, moved, lost, end_of_stream, camera_removed (end events)"
    )
    details: dict[str, Any] = Field(default_factory=dict)
    snapshot: SnapshotRef | None = Field(
        default=None, description="Present when this event brings new or better evidence"
    )
    clip: ClipRef | None = Field(default=None, description="On new events when evidence clips are enabled")

    @property
    def msg_id(self) -> str:
        return f"{self.id}:{self.event}:{self.revision}"

    @property
    def subject(self) -> str:
        return f"{SUBJECT_PREFIX}.{self.department}.{self.algorithm}.{self.camera_id}"

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def render_snapshot(snapshot: Snapshot, quality: int = 85) -> tuple[bytes, bytes, int, int]:
    """Draw the zone and the object's box on the frame; return (JPEG, thumbnail JPEG, width, height)."""
    image = snapshot.image.copy()
    h, w = image.shape[:2]
    polygon = np.array([(x * w, y * h) for x, y in snapshot.zone_polygon], dtype=np.int32)
    cv2.polylines(image, [polygon], isClosed=True, color=(0, 200, 255), thickness=2)
    x1, y1, x2, y2 = (round(v) for v in snapshot.bbox)
    cv2.rectangle(image, (x1, y1), (x2, y2), (0, 0, 255), 2)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    thumb_h = max(1, round(h * THUMBNAIL_WIDTH / w))
    thumb = cv2.resize(image, (THUMBNAIL_WIDTH, thumb_h), interpolation=cv2.INTER_AREA)
    ok_thumb, thumb_jpeg = cv2.imencode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, 70])
    if not (ok and ok_thumb):
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes(), thumb_jpeg.tobytes(), w, h


def snapshot_key(camera_id: str, incident_id: str, revision: int) -> str:
    """Object name / media path of an incident's snapshot at a revision."""
    return f"{camera_id}/{incident_id}/{revision}.jpg"


def clip_key(camera_id: str, incident_id: str) -> str:
    """Object name / media path of an incident's evidence clip."""
    return f"{camera_id}/{incident_id}/clip.mp4"


def build_message(
    event: IncidentEvent,
    camera: CameraConfig,
    media_bucket: str,
    clip_window: tuple[float, float] | None = None,
) -> tuple[IncidentMessage, bytes | None]:
    """Turn an algorithm's event into the published message and, if it has evidence, the JPEG bytes."""
    snapshot_ref, jpeg = None, None
    if event.snapshot is not None:
        jpeg, thumb, width, height = render_snapshot(event.snapshot)
        key = snapshot_key(camera.id, event.incident_id, event.revision)
        snapshot_ref = SnapshotRef(
            path=key,
            object=f"{media_bucket}/{key}",
            width=width,
            height=height,
            thumbnail_jpeg_base64=base64.b64encode(thumb).decode(),
        )
    x1, y1, x2, y2 = (round(v, 4) for v in event.bbox)
    message = IncidentMessage(
        id=event.incident_id,
        event=event.event,
        revision=event.revision,
        camera_id=camera.id,
        camera_name=camera.display_name,
        department=camera.department,
        location=Location(**camera.location.model_dump()) if camera.location else None,
        algorithm=event.algorithm,
        algorithm_version=event.algorithm_version,
        zone=event.zone,
        started_at=_utc(event.started_at),
        last_seen_at=_utc(event.last_seen_at),
        ended_at=_utc(event.ended_at) if event.ended_at is not None else None,
        dwell_seconds=event.dwell_seconds,
        bbox=BBox(x1=x1, y1=y1, x2=x2, y2=y2),
        confidence=event.confidence,
        track_id=event.track_id,
        end_reason=event.end_reason,
        details=event.details,
        snapshot=snapshot_ref,
    )
    if clip_window is not None and event.event == "new":
        key = clip_key(camera.id, event.incident_id)
        message.clip = ClipRef(
            path=key, object=f"{media_bucket}/{key}", start=_utc(clip_window[0]), end=_utc(clip_window[1])
        )
    return message, jpeg


def json_schema() -> str:
    """The JSON Schema of the incident message, as checked in at ``incident.schema.json``."""
    schema = IncidentMessage.model_json_schema(by_alias=True)
    schema["$id"] = SCHEMA_ID
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(json_schema())
    print(f"wrote {SCHEMA_PATH}")
