"""What the camera registry hands out and refuses: plain records and errors, never ORM rows.

:class:`CameraRecord` (a camera with its enabled flag, revision and :class:`CameraHealthRecord`),
:class:`CameraChange` (one entry of the change log), :class:`ImportResult`, the
:class:`RegistryError` family, and how a record is read from the ``cameras`` and ``camera_health``
tables (:func:`record_select`, :func:`row_to_record`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError
from sqlalchemy import Row, Select, select

from retina.services.core.config import CameraConfig, format_validation_error
from retina.services.core.health import CameraState
from retina.services.scheduler.db import camera_health, cameras

log = logging.getLogger(__name__)

ChangeKind = Literal["upsert", "delete"]

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class RegistryError(Exception):
    """A request the registry refuses; ``camera_id`` names the camera concerned."""

    def __init__(self, camera_id: str, message: str):
        super().__init__(message)
        self.camera_id = camera_id


class CameraNotFound(RegistryError):
    """No camera with that id is registered."""

    def __init__(self, camera_id: str):
        super().__init__(camera_id, f"no camera with id {camera_id!r}")


class CameraExists(RegistryError):
    """A camera with that id is already registered."""

    def __init__(self, camera_id: str):
        super().__init__(camera_id, f"camera {camera_id!r} already exists")


class RevisionConflict(RegistryError):
    """The camera changed since the revision the caller based its change on."""

    def __init__(self, camera_id: str, expected: int, actual: int):
        super().__init__(
            camera_id,
            f"camera {camera_id!r} is at revision {actual}, not {expected}: "
            "it was changed meanwhile; read it again and retry",
        )
        self.expected = expected
        self.actual = actual


class StoredCameraInvalid(RegistryError):
    """A stored configuration no longer validates (e.g. its algorithm plug-in was uninstalled)."""

    def __init__(self, camera_id: str, errors: list[str]):
        super().__init__(camera_id, f"stored camera {camera_id!r} is no longer valid: " + "; ".join(errors))
        self.errors = errors


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraHealthRecord:
    """A camera's health as the registry stored it from its worker's last report (epoch seconds).

    Not to be confused with the worker's live :class:`retina.services.worker.ingest.CameraHealth`,
    from which the worker reports it.
    """

    camera_id: str
    status: CameraState
    reason: str
    last_frame_at: float | None
    worker_id: str
    updated_at: float
    # Video quality as the worker last reported it: ``retina.v1.CameraQuality`` as a JSON mapping
    # (proto field names); None until one was reported.
    quality: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReferenceRecord:
    """A camera's reference view for the scene-change check, as the registry stores it."""

    camera_id: str
    image: bytes  # PNG, grey
    captured_at: float
    source: str  # "auto" or "confirmed"
    worker_id: str
    stored_at: float


@dataclass(frozen=True)
class CameraRecord:
    """A registered camera: its configuration, whether it runs, its health and its revision."""

    camera: CameraConfig
    enabled: bool
    revision: int
    created_at: float
    updated_at: float
    health: CameraHealthRecord | None = None

    @property
    def camera_id(self) -> str:
        return self.camera.id


@dataclass(frozen=True)
class CameraChange:
    """One entry of the change log: ``record`` is the camera's current state (None for deletes)."""

    kind: ChangeKind
    camera_id: str
    revision: int
    at: float
    record: CameraRecord | None = None


class ImportResult(NamedTuple):
    """How many cameras an import created, updated and left as they were."""

    created: int
    updated: int
    unchanged: int


# ---------------------------------------------------------------------------------------------
# Rows <-> records
# ---------------------------------------------------------------------------------------------


def camera_columns(camera: CameraConfig, enabled: bool) -> dict[str, Any]:
    """The columns of a ``cameras`` row derived from the configuration (all but id and times)."""
    return {
        "name": camera.name,
        "department": camera.department,
        "scene_type": camera.scene_type,
        "enabled": enabled,
        "config_json": camera.model_dump_json(),
    }


def same_config(stored_json: str, camera: CameraConfig) -> bool:
    """Whether a stored configuration equals ``camera`` (compared after re-validating it)."""
    try:
        stored = CameraConfig.model_validate_json(stored_json)
    except ValidationError:
        return False
    return stored.model_dump_json() == camera.model_dump_json()


_HEALTH_COLUMNS = ("status", "reason", "last_frame_at", "worker_id", "updated_at", "quality_json")


def record_columns() -> list[Any]:
    """The columns a CameraRecord is built from: the camera's, and its health's (prefixed)."""
    return [
        cameras.c.id.label("camera_row_id"),
        cameras.c.enabled,
        cameras.c.config_json,
        cameras.c.revision.label("camera_revision"),
        cameras.c.created_at,
        cameras.c.updated_at,
        *(camera_health.c[name].label(f"health_{name}") for name in _HEALTH_COLUMNS),
    ]


def record_select() -> Select:
    """SELECT the record columns of cameras, with their health when there is one."""
    return select(*record_columns()).select_from(
        cameras.outerjoin(camera_health, camera_health.c.camera_id == cameras.c.id)
    )


def row_to_record(row: Row) -> CameraRecord:
    """Build a record from a row of :func:`record_columns`; raises StoredCameraInvalid."""
    try:
        camera = CameraConfig.model_validate_json(row.config_json)
    except ValidationError as exc:
        raise StoredCameraInvalid(row.camera_row_id, format_validation_error(exc)) from None
    health = None
    if row.health_status is not None:
        health = CameraHealthRecord(
            camera_id=camera.id,
            status=CameraState(row.health_status),
            reason=row.health_reason,
            last_frame_at=row.health_last_frame_at,
            worker_id=row.health_worker_id,
            updated_at=row.health_updated_at,
            quality=json.loads(row.health_quality_json) if row.health_quality_json else None,
        )
    return CameraRecord(
        camera=camera,
        enabled=bool(row.enabled),
        revision=row.camera_revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        health=health,
    )


def record_or_none(row: Row) -> CameraRecord | None:
    """Like :func:`row_to_record`, but a camera that no longer validates is logged and skipped."""
    if row.camera_row_id is None:  # an outer join found no camera
        return None
    try:
        return row_to_record(row)
    except StoredCameraInvalid as exc:
        log.warning("skipping invalid stored camera", extra={"camera_id": exc.camera_id, "error": str(exc)})
        return None
