"""The incident message (schema ``retina.incident/1``): what dispatch receives on NATS.

One incident is one situation (one vehicle's stay in a zone). Its ``id`` is stable for the whole
situation, so re-delivery is idempotent; each event (``new``, ``update``…, ``end``) carries a
``revision`` that grows by one. JetStream de-duplicates on ``Nats-Msg-Id = id:event:revision``.

:class:`IncidentMessage` is the one definition of an incident; the rest is derived from it and
tests keep each in step: the checked-in JSON Schema (``incident.schema.json``, generated), the
incident store's queryable columns (``services/incidents/store.py``, a declared list of these
fields), the gRPC ``Incident`` summary (``incident_to_proto``, filled field by field from the
message). What a rule emits, the SDK's ``IncidentEvent``, becomes a message in one function,
:func:`build_message` (every event field arrives; the worker adds the camera's facts and media).

The dispatch loop (分拨-处置-核查) that follows an incident is published too: each step the incident
store records is a :class:`DispatchMessage` (schema ``retina.dispatch/1``) on
``retina.dispatch.<department>.<action>.<camera_id>``; :data:`DISPATCH_TRANSITIONS` is its state
machine.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retina.algorithms.sdk import HandedOverIncident, IncidentEvent, Snapshot
from retina.services.core.config import CameraConfig
from retina.services.core.features import TRACK_KEY_PATTERN
from retina.services.core.plate_text import PlateEvidence, PlateFacts
from retina.services.core.validation import is_token

SCHEMA_ID = "retina.incident/1"
SCHEMA_PATH = Path(__file__).with_name("incident.schema.json")
SUBJECT_PREFIX = "retina.incidents"
THUMBNAIL_WIDTH = 192
# The media path of a plate crop (see plate_key): nothing else may be fetched into the media folder.
PLATE_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_-]{1,128}/plate-\d{1,9}\.jpg$"
ALL_DEPARTMENTS = "*"

DISPATCH_SCHEMA_ID = "retina.dispatch/1"
DISPATCH_SUBJECT_PREFIX = "retina.dispatch"
DispatchStatus = Literal["new", "assigned", "handled", "verifying", "verified", "reopened", "closed"]
DispatchAction = Literal["assign", "handle", "verify", "close", "reopen"]
DISPATCH_STATUSES: tuple[str, ...] = typing.get_args(DispatchStatus)
DISPATCH_ACTIONS: tuple[str, ...] = typing.get_args(DispatchAction)
# The dispatch state machine: each action and the statuses it may be taken from. The status after
# it: assign → assigned; handle → verifying (the platform watches the scene) or handled (a person
# verifies); verify → verified ("clear") or reopened ("present"); close → closed; reopen → reopened.
DISPATCH_TRANSITIONS: dict[str, frozenset[str]] = {
    "assign": frozenset({"new", "assigned", "reopened", "handled"}),
    "handle": frozenset({"new", "assigned", "reopened"}),
    "verify": frozenset({"handled", "verifying"}),
    "close": frozenset(DISPATCH_STATUSES) - {"closed"},
    "reopen": frozenset({"closed", "verified"}),
}
CLOSE_REASONS = ("resolved", "false_alarm", "duplicate", "other")
VERIFY_OUTCOMES = {"clear": "verified", "present": "reopened"}  # outcome → status after verify


def allowed_actions(status: str) -> list[str]:
    """The dispatch actions that may be taken from ``status``, in the loop's order."""
    return [action for action in DISPATCH_ACTIONS if status in DISPATCH_TRANSITIONS[action]]


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


class PlateCropRef(BaseModel):
    """The plate's crop (JPEG, full resolution): ``path`` in the incident store's media folder,
    ``object`` in the object store. Like the plate text, only roles that see originals see it."""

    path: str = Field(pattern=PLATE_KEY_PATTERN, description="<camera_id>/<incident id>/plate-<n>.jpg")
    object: str


class IncidentPlate(PlateFacts):
    """The licence plate of the incident's object, voted over the reads of its track."""

    crop: PlateCropRef | None = Field(default=None, description="Evidence: the crop the plate was read on")


def incident_msg_id(incident_id: str, event: str, revision: int) -> str:
    """The Nats-Msg-Id of an incident event: ``<id>:<event>:<revision>`` (JetStream de-duplicates)."""
    return f"{incident_id}:{event}:{revision}"


def parse_incident_msg_id(msg_id: str) -> tuple[str, str, int] | None:
    """(incident id, event, revision) of an incident event's message id; None for any other id."""
    incident_id, _, rest = msg_id.partition(":")
    event, _, revision = rest.partition(":")
    if not incident_id or event not in ("new", "update", "end") or not revision.isdigit():
        return None
    return incident_id, event, int(revision)


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
    track_key: str | None = Field(
        default=None,
        pattern=TRACK_KEY_PATTERN.pattern,
        description="The feature track of the incident's object (search by image): "
        "<camera_id>:<first seen, epoch ms>:<track_id>; null when it has none (absent in older messages)",
    )
    camera_quality: list[str] = Field(
        default_factory=list,
        description="The camera's video-quality problems when the event was made (no_signal, "
        "decode_errors, frozen, blur, dark, overexposed, colour_cast, noise, occluded, scene_change); "
        "empty for a clean picture and in older messages",
    )
    visible_to: list[str] = Field(
        default_factory=list,
        description="Departments that may see it, recorded when the event was built: the camera's "
        "department and shared_with ('*': all). Absent in older messages: the owning department only",
    )
    grid_code: str = Field(
        default="",
        description="The camera's unit grid (单元网格) code when the event was built ('' when it has none"
        " or in older messages): its case is routed by it",
    )
    address: str = Field(default="", description="The camera's street address when the event was built")
    plate: IncidentPlate | None = Field(
        default=None,
        description="The object's licence plate where plates are read and it was readable (absent otherwise"
        " and in older messages)",
    )

    @field_validator("visible_to")
    @classmethod
    def _departments(cls, value: list[str]) -> list[str]:
        for department in value:
            if department != ALL_DEPARTMENTS and not is_token(department):
                raise ValueError(f"{department[:40]!r} is not a department (a token, or '*')")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _owner_sees_it(self) -> IncidentMessage:
        if self.department not in self.visible_to:  # older messages: the owning department only
            self.visible_to = [self.department, *self.visible_to]
        return self

    @property
    def msg_id(self) -> str:
        return incident_msg_id(self.id, self.event, self.revision)

    @property
    def subject(self) -> str:
        return f"{SUBJECT_PREFIX}.{self.department}.{self.algorithm}.{self.camera_id}"

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def draw_zone(image: np.ndarray, polygon: list[tuple[float, float]]) -> None:
    """Draw a zone's outline (normalised points) onto a BGR frame, in place."""
    h, w = image.shape[:2]
    points = np.array([(x * w, y * h) for x, y in polygon], dtype=np.int32)
    cv2.polylines(image, [points], isClosed=True, color=(0, 200, 255), thickness=2)


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """A BGR frame as JPEG bytes."""
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()


def render_snapshot(snapshot: Snapshot, quality: int = 85) -> tuple[bytes, bytes, int, int]:
    """Draw the zone and the object's box on the frame; return (JPEG, thumbnail JPEG, width, height)."""
    image = snapshot.image.copy()
    h, w = image.shape[:2]
    draw_zone(image, snapshot.zone_polygon)
    x1, y1, x2, y2 = (round(v) for v in snapshot.bbox)
    cv2.rectangle(image, (x1, y1), (x2, y2), (0, 0, 255), 2)
    thumb_h = max(1, round(h * THUMBNAIL_WIDTH / w))
    thumb = cv2.resize(image, (THUMBNAIL_WIDTH, thumb_h), interpolation=cv2.INTER_AREA)
    return encode_jpeg(image, quality), encode_jpeg(thumb, 70), w, h


def snapshot_key(camera_id: str, incident_id: str, revision: int) -> str:
    """Object name / media path of an incident's snapshot at a revision."""
    return f"{camera_id}/{incident_id}/{revision}.jpg"


def plate_key(camera_id: str, incident_id: str, crop_revision: int) -> str:
    """Object name / media path of an incident's plate crop at a crop revision."""
    return f"{camera_id}/{incident_id}/plate-{crop_revision}.jpg"


def incident_plate(
    plate: PlateEvidence, camera_id: str, incident_id: str, media_bucket: str
) -> IncidentPlate:
    """The ``plate`` of a message from the worker's plate evidence (the crop named, not attached)."""
    key = plate_key(camera_id, incident_id, plate.crop_revision) if plate.crop_revision >= 0 else None
    if key is not None and not re.fullmatch(PLATE_KEY_PATTERN, key):  # a plug-in's odd incident id
        key = None
    crop = PlateCropRef(path=key, object=f"{media_bucket}/{key}") if key is not None else None
    return IncidentPlate(**plate.facts.model_dump(), crop=crop)


def clip_key(camera_id: str, incident_id: str) -> str:
    """Object name / media path of an incident's evidence clip."""
    return f"{camera_id}/{incident_id}/clip.mp4"


def event_fields(event: IncidentEvent) -> dict[str, Any]:
    """Every field of an algorithm's event as the message field of that name and type (``incident_id``
    is the message's ``id``; the evidence ``snapshot`` and the ``plate`` are made by
    :func:`build_message`)."""
    values = {
        f.name: getattr(event, f.name)
        for f in dataclasses.fields(event)
        if f.name not in ("snapshot", "plate")
    }
    values["id"] = values.pop("incident_id")
    for name in ("started_at", "last_seen_at", "ended_at"):
        values[name] = _utc(values[name]) if values[name] is not None else None
    x1, y1, x2, y2 = (round(v, 4) for v in event.bbox)
    values["bbox"] = BBox(x1=x1, y1=y1, x2=x2, y2=y2)
    values["details"] = dict(event.details)
    return values


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
    message = IncidentMessage(
        **event_fields(event),
        camera_id=camera.id,
        camera_name=camera.display_name,
        department=camera.department,
        location=Location(**camera.location.model_dump()) if camera.location else None,
        snapshot=snapshot_ref,
        visible_to=[camera.department, *camera.shared_with],
        grid_code=camera.grid_code,
        address=camera.address,
    )
    if event.plate is not None:
        message.plate = incident_plate(event.plate, camera.id, event.incident_id, media_bucket)
    if clip_window is not None and event.event == "new":
        key = clip_key(camera.id, event.incident_id)
        message.clip = ClipRef(
            path=key, object=f"{media_bucket}/{key}", start=_utc(clip_window[0]), end=_utc(clip_window[1])
        )
    return message, jpeg


def handed_over(message: IncidentMessage) -> HandedOverIncident:
    """The incident as its latest message left it, for the camera's next worker to continue (what
    the incident store knows when the worker that had the incident died)."""
    b = message.bbox
    values = {
        "incident_id": message.id,
        "started_at": message.started_at.timestamp(),
        "last_seen_at": message.last_seen_at.timestamp(),
        "bbox": (b.x1, b.y1, b.x2, b.y2),
    }
    names = [f.name for f in dataclasses.fields(HandedOverIncident)]
    return HandedOverIncident(
        **{name: values[name] if name in values else getattr(message, name) for name in names}
    )


class DispatchMessage(BaseModel):
    """One step of an incident's dispatch loop, as the incident store recorded and published it."""

    model_config = ConfigDict(populate_by_name=True)

    schema_id: Literal["retina.dispatch/1"] = Field(default=DISPATCH_SCHEMA_ID, alias="schema")
    incident_id: str
    seq: int = Field(ge=1, description="1 for the incident's first step, +1 for each later one")
    at: datetime
    action: DispatchAction
    actor: str = Field(description='Who took the step: "user:<name>", "system:verifier", ...')
    note: str = ""
    status: DispatchStatus = Field(description="The incident's dispatch status after the step")
    department: str = Field(description="The owning department")
    visible_to: list[str] = Field(description="Departments that may see the incident ('*': all)")
    camera_id: str
    algorithm: str
    zone: str
    media_path: str | None = Field(
        default=None, description="Field photo (handle) or evidence frame (verify), in the media folder"
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Facts of the step: assignee, due_at (assign); verify_due_at (handle); outcome "
        "(verify); reason (close); previous_status (every step)",
    )

    @property
    def msg_id(self) -> str:
        """The Nats-Msg-Id: ``<incident_id>:dispatch:<seq>`` (JetStream de-duplicates re-sends)."""
        return f"{self.incident_id}:dispatch:{self.seq}"

    @property
    def subject(self) -> str:
        return f"{DISPATCH_SUBJECT_PREFIX}.{self.department}.{self.action}.{self.camera_id}"

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def json_schema() -> str:
    """The JSON Schema of the incident message, as checked in at ``incident.schema.json``."""
    schema = IncidentMessage.model_json_schema(by_alias=True)
    schema["$id"] = SCHEMA_ID
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(json_schema())
    print(f"wrote {SCHEMA_PATH}")
