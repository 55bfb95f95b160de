"""The camera registry (一机一档): every camera's configuration, state and health, with a change log.

One :class:`CameraRegistry` works on the scheduler's database (:mod:`~retina.services.scheduler.db`,
which describes the tables): the ``cameras``, ``camera_algorithms``, ``camera_health``,
``camera_changes``, ``camera_references`` and ``registry_state`` tables are its own. Every create,
update and delete takes the next global revision and appends it to the change log in the same
transaction, so a watcher can resume from any revision (:meth:`CameraRegistry.changes_since`).
Health is stored, not logged: it is no change; nor is a camera's reference view
(:meth:`CameraRegistry.set_reference`), which an update that changes what the camera looks at (its
URL or zones) drops, so its worker takes the new view.

Every method opens its own short transaction and is safe to call from any thread. Callers get
plain records (:mod:`~retina.services.scheduler.camera_records`), never ORM rows.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update

from retina.services.core.config import CameraConfig
from retina.services.core.health import CameraState
from retina.services.core.quality import same_view
from retina.services.scheduler.camera_records import (
    CameraChange,
    CameraExists,
    CameraHealthRecord,
    CameraNotFound,
    CameraRecord,
    ChangeKind,
    ImportResult,
    ReferenceRecord,
    RevisionConflict,
    camera_columns,
    record_columns,
    record_or_none,
    record_select,
    row_to_record,
    same_config,
)
from retina.services.scheduler.db import (
    SchedulerDatabase,
    camera_algorithms,
    camera_changes,
    camera_health,
    camera_references,
    cameras,
    open_database,
    registry_state,
    upsert,
)

log = logging.getLogger(__name__)


class CameraRegistry:
    """The persistent camera registry.

    ``database`` is an open :class:`~retina.services.scheduler.db.SchedulerDatabase` (shared with
    the worker store; closing the registry leaves it open) or a database URL, which the registry
    opens, migrates and closes itself: ``sqlite:////abs/path/registry.sqlite`` (see
    :func:`~retina.services.scheduler.db.sqlite_url`; the folder is created) or
    ``postgresql+psycopg://user:pw@host/db``.
    """

    def __init__(self, database: str | SchedulerDatabase):
        self._db, self._owns_db = open_database(database)
        self.database_url = self._db.database_url
        self._listeners: list[Callable[[int], None]] = []

    def close(self) -> None:
        """Close the database connections (if the registry opened the database)."""
        if self._owns_db:
            self._db.close()

    def __enter__(self) -> CameraRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- change notification ------------------------------------------------------------------

    def add_listener(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(revision)`` after each committed camera change made through this object.

        It runs on the writing thread, so it must be quick and thread-safe (e.g. hand over with
        ``loop.call_soon_threadsafe``). Changes written by other processes are not reported: poll
        :meth:`changes_since` for those. Returns a function that removes the listener.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self, revision: int) -> None:
        for callback in list(self._listeners):
            try:
                callback(revision)
            except Exception:
                log.exception("registry change listener failed")

    # --- transactions ---------------------------------------------------------------------------

    @staticmethod
    def _lock_revision(connection: Connection) -> int:
        """Lock the revision counter for this transaction and return the current revision."""
        return connection.execute(
            select(registry_state.c.revision).where(registry_state.c.id == 1).with_for_update()
        ).scalar_one()

    @staticmethod
    def _log_change(
        connection: Connection, revision: int, camera_id: str, kind: ChangeKind, at: float
    ) -> None:
        connection.execute(update(registry_state).where(registry_state.c.id == 1).values(revision=revision))
        connection.execute(
            insert(camera_changes).values(revision=revision, camera_id=camera_id, kind=kind, at=at)
        )

    # --- cameras ------------------------------------------------------------------------------

    def create(self, camera: CameraConfig, enabled: bool = True) -> CameraRecord:
        """Register a new camera; raises :class:`CameraExists` when the id is taken."""
        with self._db.write() as connection:
            revision = self._lock_revision(connection) + 1
            if self._get_row(connection, camera.id) is not None:
                raise CameraExists(camera.id)
            self._insert_camera(connection, camera, enabled, revision, time.time())
            record = self._get_record(connection, camera.id)
        self._notify(revision)
        return record

    def update(
        self, camera: CameraConfig, enabled: bool | None = None, expected_revision: int | None = None
    ) -> CameraRecord:
        """Replace a camera's configuration (and its enabled flag, unless ``enabled`` is None).

        With ``expected_revision``, raises :class:`RevisionConflict` if the camera's revision is
        different. Raises :class:`CameraNotFound` for an unknown id. An update that changes
        nothing returns the record as it was, with its revision unchanged.
        """
        with self._db.write() as connection:
            revision = self._lock_revision(connection) + 1
            row = self._get_row(connection, camera.id)
            if row is None:
                raise CameraNotFound(camera.id)
            if expected_revision is not None and expected_revision != row.revision:
                raise RevisionConflict(camera.id, expected_revision, row.revision)
            enabled = row.enabled if enabled is None else enabled
            changed = self._replace_camera(connection, row, camera, enabled, revision, time.time())
            record = self._get_record(connection, camera.id)
        if changed:
            self._notify(revision)
        return record

    def delete(self, camera_id: str, expected_revision: int | None = None) -> int:
        """Remove a camera (with its health) and return the revision of the deletion.

        Raises :class:`CameraNotFound` or, with ``expected_revision``, :class:`RevisionConflict`.
        """
        with self._db.write() as connection:
            revision = self._lock_revision(connection) + 1
            row = self._get_row(connection, camera_id)
            if row is None:
                raise CameraNotFound(camera_id)
            if expected_revision is not None and expected_revision != row.revision:
                raise RevisionConflict(camera_id, expected_revision, row.revision)
            connection.execute(delete(cameras).where(cameras.c.id == camera_id))
            self._log_change(connection, revision, camera_id, "delete", time.time())
        self._notify(revision)
        return revision

    def get(self, camera_id: str) -> CameraRecord:
        """One camera; raises :class:`CameraNotFound` (or :class:`StoredCameraInvalid`)."""
        with self._db.read() as connection:
            return self._get_record(connection, camera_id)

    def list(
        self,
        department: str | None = None,
        scene_type: str | None = None,
        algorithm: str | None = None,
        enabled: bool | None = None,
        text: str | None = None,
        limit: int | None = None,
        after_id: str | None = None,
    ) -> list[CameraRecord]:
        """Cameras matching every filter given, ordered by id.

        ``text`` is a case-insensitive substring of the id or the name. Page with ``limit`` (None:
        all) and ``after_id`` (the last id of the previous page). Cameras whose stored
        configuration no longer validates are logged and left out.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit: {limit} is negative")
        query = record_select()
        if department:
            query = query.where(cameras.c.department == department)
        if scene_type:
            query = query.where(cameras.c.scene_type == scene_type)
        if algorithm:
            with_algorithm = select(camera_algorithms.c.camera_id).where(
                camera_algorithms.c.name == algorithm
            )
            query = query.where(cameras.c.id.in_(with_algorithm))
        if enabled is not None:
            query = query.where(cameras.c.enabled == enabled)
        if text:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                or_(cameras.c.id.ilike(pattern, escape="\\"), cameras.c.name.ilike(pattern, escape="\\"))
            )
        query = query.order_by(cameras.c.id)
        records: list[CameraRecord] = []
        with self._db.read() as connection:
            while True:  # more than one round only when invalid cameras were skipped
                wanted = None if limit is None else limit - len(records)
                page = query if after_id is None else query.where(cameras.c.id > after_id)
                rows = connection.execute(page.limit(wanted)).all()
                records += [record for record in map(record_or_none, rows) if record is not None]
                if wanted is None or len(rows) < wanted or len(records) >= limit:
                    return records
                after_id = rows[-1].camera_row_id

    def current_revision(self) -> int:
        """The revision of the latest change (0 for an empty, never-changed registry)."""
        with self._db.read() as connection:
            return connection.execute(
                select(registry_state.c.revision).where(registry_state.c.id == 1)
            ).scalar_one()

    def changes_since(self, revision: int) -> list[CameraChange]:
        """What changed after ``revision``, oldest first: the latest change of each camera only.

        With 0: every camera as an ``upsert`` (deletions of the past are left out). An ``upsert``
        carries the camera's current record; a ``delete`` carries none.
        """
        with self._db.read() as connection:
            if revision <= 0:
                rows = connection.execute(record_select().order_by(cameras.c.revision)).all()
                records = [record for record in map(record_or_none, rows) if record is not None]
                return [CameraChange("upsert", r.camera_id, r.revision, r.updated_at, r) for r in records]
            latest = (
                select(func.max(camera_changes.c.revision).label("revision"))
                .where(camera_changes.c.revision > revision)
                .group_by(camera_changes.c.camera_id)
                .subquery()
            )
            # One statement, so the change log and the cameras are read from the same snapshot.
            query = (
                select(camera_changes, *record_columns())
                .join(latest, latest.c.revision == camera_changes.c.revision)
                .outerjoin(cameras, cameras.c.id == camera_changes.c.camera_id)
                .outerjoin(camera_health, camera_health.c.camera_id == camera_changes.c.camera_id)
                .order_by(camera_changes.c.revision)
            )
            rows = connection.execute(query).all()
        changes = []
        for row in rows:
            if row.kind == "delete":
                changes.append(CameraChange("delete", row.camera_id, row.revision, row.at))
                continue
            record = record_or_none(row)
            if record is not None:
                changes.append(CameraChange("upsert", row.camera_id, row.revision, row.at, record))
        return changes

    def import_cameras(self, new_cameras: Sequence[CameraConfig]) -> ImportResult:
        """Create or update many cameras in one transaction (e.g. from a YAML configuration).

        New cameras are created enabled; existing ones keep their enabled flag. Cameras whose
        configuration is identical to the stored one are left alone and keep their revision.
        Raises ValueError, importing nothing, when an id appears twice.
        """
        seen: set[str] = set()
        for camera in new_cameras:
            if camera.id in seen:
                raise ValueError(f"camera {camera.id!r} is listed twice")
            seen.add(camera.id)
        created = updated = unchanged = 0
        with self._db.write() as connection:
            start = self._lock_revision(connection)
            revision = start
            now = time.time()
            for camera in new_cameras:
                row = self._get_row(connection, camera.id)
                if row is None:
                    self._insert_camera(connection, camera, True, revision + 1, now)
                    created += 1
                elif self._replace_camera(connection, row, camera, row.enabled, revision + 1, now):
                    updated += 1
                else:
                    unchanged += 1
                    continue
                revision += 1
        if revision > start:
            self._notify(revision)
        return ImportResult(created, updated, unchanged)

    def report_health(
        self,
        camera_id: str,
        status: CameraState | str,
        reason: str = "",
        last_frame_at: float | None = None,
        worker_id: str = "",
        quality: dict[str, Any] | None = None,
    ) -> CameraHealthRecord:
        """Store a camera's health (not a change: no revision, no notification).

        ``status`` is a :class:`CameraState` or its value (ValueError otherwise); ``quality`` its
        video quality (``retina.v1.CameraQuality`` as a JSON mapping), None when not reported.
        Raises :class:`CameraNotFound` for an unknown camera.
        """
        try:
            status = CameraState(status)
        except ValueError:
            raise ValueError(f"status: {status!r} is not one of {', '.join(CameraState)}") from None
        health = CameraHealthRecord(camera_id, status, reason, last_frame_at, worker_id, time.time(), quality)
        with self._db.write() as connection:
            if self._get_row(connection, camera_id) is None:
                raise CameraNotFound(camera_id)
            values = {
                "camera_id": camera_id,
                "status": status.value,
                "reason": reason,
                "last_frame_at": last_frame_at,
                "worker_id": worker_id,
                "updated_at": health.updated_at,
                "quality_json": json.dumps(quality) if quality is not None else None,
            }
            upsert(connection, camera_health, values, ["camera_id"])
        return health

    # --- reference views (the scene-change check) ---------------------------------------------------

    def set_reference(
        self, camera_id: str, image: bytes, captured_at: float, source: str, worker_id: str = ""
    ) -> ReferenceRecord:
        """Store a camera's reference view (not a change: no revision, no notification); raises
        :class:`CameraNotFound` for an unknown camera."""
        record = ReferenceRecord(camera_id, image, captured_at, source, worker_id, time.time())
        with self._db.write() as connection:
            if self._get_row(connection, camera_id) is None:
                raise CameraNotFound(camera_id)
            values = {
                "camera_id": camera_id,
                "image": image,
                "captured_at": captured_at,
                "source": source,
                "worker_id": worker_id,
                "stored_at": record.stored_at,
            }
            upsert(connection, camera_references, values, ["camera_id"])
        return record

    def reference(self, camera_id: str) -> ReferenceRecord | None:
        """A camera's reference view; None when it has none (yet, or since its view changed)."""
        with self._db.read() as connection:
            row = connection.execute(
                select(camera_references).where(camera_references.c.camera_id == camera_id)
            ).first()
        if row is None:
            return None
        return ReferenceRecord(
            row.camera_id, bytes(row.image), row.captured_at, row.source, row.worker_id, row.stored_at
        )

    # --- camera helpers (inside a transaction) --------------------------------------------------

    @staticmethod
    def _get_row(connection: Connection, camera_id: str) -> Row | None:
        return connection.execute(select(cameras).where(cameras.c.id == camera_id)).first()

    @staticmethod
    def _get_record(connection: Connection, camera_id: str) -> CameraRecord:
        row = connection.execute(record_select().where(cameras.c.id == camera_id)).first()
        if row is None:
            raise CameraNotFound(camera_id)
        return row_to_record(row)

    def _insert_camera(
        self, connection: Connection, camera: CameraConfig, enabled: bool, revision: int, now: float
    ) -> None:
        connection.execute(
            insert(cameras).values(
                id=camera.id,
                **camera_columns(camera, enabled),
                revision=revision,
                created_at=now,
                updated_at=now,
            )
        )
        self._set_algorithms(connection, camera)
        self._log_change(connection, revision, camera.id, "upsert", now)

    def _replace_camera(
        self, connection: Connection, row: Row, camera: CameraConfig, enabled: bool, revision: int, now: float
    ) -> bool:
        """Write the new configuration unless it equals the stored one; True when it changed."""
        if enabled == row.enabled and same_config(row.config_json, camera):
            return False
        if not self._same_view(row.config_json, camera):  # re-drawn zones accept the current view
            connection.execute(delete(camera_references).where(camera_references.c.camera_id == camera.id))
        connection.execute(
            update(cameras)
            .where(cameras.c.id == camera.id)
            .values(**camera_columns(camera, enabled), revision=revision, updated_at=now)
        )
        self._set_algorithms(connection, camera)
        self._log_change(connection, revision, camera.id, "upsert", now)
        return True

    @staticmethod
    def _same_view(stored_json: str, camera: CameraConfig) -> bool:
        """Whether the stored configuration looks at the same view as ``camera`` (URL and zones)."""
        try:
            return same_view(CameraConfig.model_validate_json(stored_json), camera)
        except ValidationError:
            return False

    @staticmethod
    def _set_algorithms(connection: Connection, camera: CameraConfig) -> None:
        connection.execute(delete(camera_algorithms).where(camera_algorithms.c.camera_id == camera.id))
        if camera.algorithms:
            connection.execute(
                insert(camera_algorithms),
                [{"camera_id": camera.id, "name": spec.name} for spec in camera.algorithms],
            )
