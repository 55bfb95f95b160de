"""The camera registry (一机一档): every camera's configuration, state and health, in SQL.

One :class:`CameraRegistry` wraps one database: SQLite by default (``sqlite:////var/lib/retina/
registry.sqlite``, see :func:`sqlite_url`), PostgreSQL when given a ``postgresql+psycopg://`` URL.
The schema is owned by the Alembic migrations next to this file and is upgraded when the registry
opens, so a newer retina can open an older database.

Tables:

* ``cameras`` — one row per camera: its validated configuration as JSON (``CameraConfig``) plus
  the columns the list filters use (department, scene_type, enabled, name), each indexed.
* ``camera_algorithms`` — (camera_id, algorithm name) pairs, so "cameras running X" is an index
  lookup rather than a scan of every configuration.
* ``camera_health`` — the last health a worker reported for a camera.
* ``camera_changes`` — the change log: every create, update and delete appends a row with the
  next global revision in the same transaction as the change. Deleted cameras leave their
  ``delete`` row behind (a tombstone), so a watcher that was away still learns about them.
* ``registry_state`` — one row holding the latest revision. Every revisioned write locks it
  first, which serialises writers (also across processes on PostgreSQL) so revisions commit in
  order: a reader that has seen revision N has seen every revision below N.
* ``workers`` and ``assignments`` — the scheduler's own state, so it survives a restart.

Every method opens its own short transaction and is safe to call from any thread. Callers get
plain dataclasses (:class:`CameraRecord`, :class:`CameraChange`, ...), never ORM rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from alembic import command
from alembic.config import Config as AlembicConfig
from pydantic import ValidationError
from retina.services.core.config import CameraConfig, format_validation_error
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
HEALTH_STATUSES = ("starting", "online", "offline", "stalled", "stopped")
ChangeKind = Literal["upsert", "delete"]

# ---------------------------------------------------------------------------------------------
# Schema. The migrations in migrations/versions create exactly these tables; a test compares them.
# ---------------------------------------------------------------------------------------------

metadata = MetaData()

registry_state = Table(
    "registry_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1: a single row
    Column("revision", BigInteger, nullable=False),
)

cameras = Table(
    "cameras",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("department", String(64), nullable=False, index=True),
    Column("scene_type", String(128), nullable=False, index=True),
    Column("enabled", Boolean, nullable=False, index=True),
    Column("config_json", Text, nullable=False),  # CameraConfig.model_dump_json()
    Column("revision", BigInteger, nullable=False),  # revision of the camera's latest change
    Column("created_at", Double, nullable=False),  # epoch seconds
    Column("updated_at", Double, nullable=False),
)

camera_algorithms = Table(
    "camera_algorithms",
    metadata,
    Column("camera_id", String(64), ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Index("ix_camera_algorithms_name", "name", "camera_id"),
)

camera_health = Table(
    "camera_health",
    metadata,
    Column("camera_id", String(64), ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("last_frame_at", Double, nullable=True),
    Column("worker_id", String(128), nullable=False),
    Column("updated_at", Double, nullable=False),
)

camera_changes = Table(
    "camera_changes",
    metadata,
    Column("revision", BigInteger, primary_key=True, autoincrement=False),
    Column("camera_id", String(64), nullable=False),
    Column("kind", String(8), nullable=False),  # "upsert" or "delete"
    Column("at", Double, nullable=False),
)

workers = Table(
    "workers",
    metadata,
    Column("worker_id", String(128), primary_key=True),
    Column("address", Text, nullable=False),
    Column("devices", JSON, nullable=False),
    Column("decode_capacity", Double, nullable=False),
    Column("model_key", Text, nullable=False),
    Column("registered_at", Double, nullable=False),
    Column("last_heartbeat_at", Double, nullable=False),
)

assignments = Table(
    "assignments",
    metadata,
    Column("camera_id", String(64), primary_key=True),
    Column("worker_id", String(128), nullable=False, index=True),
    Column("device_id", String(64), nullable=False),
    Column("assigned_at", Double, nullable=False),
)

# ---------------------------------------------------------------------------------------------
# What callers get back
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


@dataclass(frozen=True)
class CameraHealth:
    """A camera's health as its worker last reported it (epoch seconds)."""

    camera_id: str
    status: str  # one of HEALTH_STATUSES
    reason: str
    last_frame_at: float | None
    worker_id: str
    updated_at: float


@dataclass(frozen=True)
class CameraRecord:
    """A registered camera: its configuration, whether it runs, its health and its revision."""

    camera: CameraConfig
    enabled: bool
    revision: int
    created_at: float
    updated_at: float
    health: CameraHealth | None = None

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


@dataclass(frozen=True)
class WorkerRecord:
    """A worker the scheduler knows (``devices`` is whatever JSON the scheduler stores)."""

    worker_id: str
    address: str
    devices: list[dict[str, Any]]
    decode_capacity: float
    model_key: str
    registered_at: float
    last_heartbeat_at: float


# ---------------------------------------------------------------------------------------------
# Opening the database
# ---------------------------------------------------------------------------------------------


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file (``sqlite:////abs/path/registry.sqlite``)."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def alembic_config(database_url: str) -> AlembicConfig:
    """An Alembic configuration for the registry's migrations, built in code (no alembic.ini).

    Also the way to write a new migration after changing the tables above::

        from alembic import command
        command.revision(alembic_config("sqlite:////tmp/x.sqlite"), "add ...", autogenerate=True)
    """
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _create_engine(database_url: str) -> Engine:
    """An engine for SQLite (WAL, busy timeout, foreign keys, BEGIN IMMEDIATE for writes) or PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    if url.get_backend_name() != "sqlite":
        raise ValueError(f"unsupported database {url.get_backend_name()!r}: use sqlite:/// or postgresql://")
    if not url.database or url.database == ":memory:":
        raise ValueError("the registry needs a SQLite file (sqlite:////path/registry.sqlite), not :memory:")
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), so sqlite3 must not start transactions on its own.
        dbapi_connection.isolation_level = None
        for pragma in (
            "journal_mode=WAL",  # readers never block the writer, and the other way round
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "foreign_keys=ON",  # deleting a camera cascades to its algorithms and health
        ):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A write transaction takes SQLite's write lock up front: a deferred one that reads first
        # could not upgrade once another process had written, and would fail instead of waiting.
        immediate = connection.get_execution_options().get("retina_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------


class CameraRegistry:
    """The persistent camera registry plus the scheduler's worker and assignment tables.

    ``database_url`` is a SQLAlchemy URL: ``sqlite:////abs/path/registry.sqlite`` (see
    :func:`sqlite_url`; the folder is created) or ``postgresql+psycopg://user:pw@host/db``. The
    schema is migrated to the newest version on open.
    """

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._engine = _create_engine(database_url)
        self._write_lock = threading.Lock()  # one writer at a time within this process
        self._listeners: list[Callable[[int], None]] = []
        self._migrate()

    def _migrate(self) -> None:
        config = alembic_config(self.database_url)
        with self._engine.connect() as connection:
            connection.execution_options(retina_write=True)
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")

    def close(self) -> None:
        """Close the database connections."""
        self._engine.dispose()

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

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._write_lock, self._engine.connect() as connection:
            connection.execution_options(retina_write=True)
            with connection.begin():
                yield connection

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
        with self._write() as connection:
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
        with self._write() as connection:
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
        with self._write() as connection:
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
        with self._read() as connection:
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
        query = _record_select()
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
        with self._read() as connection:
            while True:  # more than one round only when invalid cameras were skipped
                wanted = None if limit is None else limit - len(records)
                page = query if after_id is None else query.where(cameras.c.id > after_id)
                rows = connection.execute(page.limit(wanted)).all()
                records += [record for record in map(_record_or_none, rows) if record is not None]
                if wanted is None or len(rows) < wanted or len(records) >= limit:
                    return records
                after_id = rows[-1].camera_row_id

    def current_revision(self) -> int:
        """The revision of the latest change (0 for an empty, never-changed registry)."""
        with self._read() as connection:
            return connection.execute(
                select(registry_state.c.revision).where(registry_state.c.id == 1)
            ).scalar_one()

    def changes_since(self, revision: int) -> list[CameraChange]:
        """What changed after ``revision``, oldest first: the latest change of each camera only.

        With 0: every camera as an ``upsert`` (deletions of the past are left out). An ``upsert``
        carries the camera's current record; a ``delete`` carries none.
        """
        with self._read() as connection:
            if revision <= 0:
                rows = connection.execute(_record_select().order_by(cameras.c.revision)).all()
                records = [record for record in map(_record_or_none, rows) if record is not None]
                return [CameraChange("upsert", r.camera_id, r.revision, r.updated_at, r) for r in records]
            latest = (
                select(func.max(camera_changes.c.revision).label("revision"))
                .where(camera_changes.c.revision > revision)
                .group_by(camera_changes.c.camera_id)
                .subquery()
            )
            # One statement, so the change log and the cameras are read from the same snapshot.
            query = (
                select(camera_changes, *_record_columns())
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
            record = _record_or_none(row)
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
        with self._write() as connection:
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
        status: str,
        reason: str = "",
        last_frame_at: float | None = None,
        worker_id: str = "",
    ) -> CameraHealth:
        """Store a camera's health (not a change: no revision, no notification).

        ``status`` is one of :data:`HEALTH_STATUSES` (ValueError otherwise); raises
        :class:`CameraNotFound` for an unknown camera.
        """
        if status not in HEALTH_STATUSES:
            raise ValueError(f"status: {status!r} is not one of {', '.join(HEALTH_STATUSES)}")
        health = CameraHealth(camera_id, status, reason, last_frame_at, worker_id, time.time())
        with self._write() as connection:
            if self._get_row(connection, camera_id) is None:
                raise CameraNotFound(camera_id)
            values = {
                "camera_id": camera_id,
                "status": status,
                "reason": reason,
                "last_frame_at": last_frame_at,
                "worker_id": worker_id,
                "updated_at": health.updated_at,
            }
            _upsert(connection, camera_health, values, ["camera_id"])
        return health

    # --- camera helpers (inside a transaction) --------------------------------------------------

    @staticmethod
    def _get_row(connection: Connection, camera_id: str) -> Row | None:
        return connection.execute(select(cameras).where(cameras.c.id == camera_id)).first()

    @staticmethod
    def _get_record(connection: Connection, camera_id: str) -> CameraRecord:
        row = connection.execute(_record_select().where(cameras.c.id == camera_id)).first()
        if row is None:
            raise CameraNotFound(camera_id)
        return _row_to_record(row)

    def _insert_camera(
        self, connection: Connection, camera: CameraConfig, enabled: bool, revision: int, now: float
    ) -> None:
        connection.execute(
            insert(cameras).values(
                id=camera.id,
                **_camera_columns(camera, enabled),
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
        if enabled == row.enabled and _same_config(row.config_json, camera):
            return False
        connection.execute(
            update(cameras)
            .where(cameras.c.id == camera.id)
            .values(**_camera_columns(camera, enabled), revision=revision, updated_at=now)
        )
        self._set_algorithms(connection, camera)
        self._log_change(connection, revision, camera.id, "upsert", now)
        return True

    @staticmethod
    def _set_algorithms(connection: Connection, camera: CameraConfig) -> None:
        connection.execute(delete(camera_algorithms).where(camera_algorithms.c.camera_id == camera.id))
        if camera.algorithms:
            connection.execute(
                insert(camera_algorithms),
                [{"camera_id": camera.id, "name": spec.name} for spec in camera.algorithms],
            )

    # --- the scheduler's state ------------------------------------------------------------------

    def save_worker(
        self,
        worker_id: str,
        address: str,
        devices: list[dict[str, Any]],
        decode_capacity: float,
        model_key: str = "",
        *,
        registered_at: float | None = None,
        last_heartbeat_at: float | None = None,
    ) -> WorkerRecord:
        """Insert or replace a worker (``devices``: any JSON-serialisable list of mappings).

        ``registered_at`` None keeps the stored registration time (now for a new worker);
        ``last_heartbeat_at`` None means now.
        """
        now = time.time()
        values = {
            "worker_id": worker_id,
            "address": address,
            "devices": devices,
            "decode_capacity": decode_capacity,
            "model_key": model_key,
            "registered_at": now if registered_at is None else registered_at,
            "last_heartbeat_at": now if last_heartbeat_at is None else last_heartbeat_at,
        }
        keep = {"registered_at"} if registered_at is None else set()
        with self._write() as connection:
            _upsert(connection, workers, values, ["worker_id"], keep=keep)
            row = connection.execute(select(workers).where(workers.c.worker_id == worker_id)).one()
        return WorkerRecord(**row._asdict())

    def remove_worker(self, worker_id: str) -> bool:
        """Forget a worker; False if it was not stored. Its assignments are left to the caller."""
        with self._write() as connection:
            return connection.execute(delete(workers).where(workers.c.worker_id == worker_id)).rowcount > 0

    def load_workers(self) -> list[WorkerRecord]:
        """Every stored worker, ordered by id."""
        with self._read() as connection:
            rows = connection.execute(select(workers).order_by(workers.c.worker_id)).all()
        return [WorkerRecord(**row._asdict()) for row in rows]

    def set_assignments(self, placement: Mapping[str, tuple[str, str]]) -> None:
        """Replace every assignment with ``{camera_id: (worker_id, device_id)}`` in one transaction.

        A camera that stays on the same worker and device keeps its assignment time.
        """
        now = time.time()
        with self._write() as connection:
            current = {row.camera_id: row for row in connection.execute(select(assignments))}
            gone = [camera_id for camera_id in current if camera_id not in placement]
            if gone:
                connection.execute(delete(assignments).where(assignments.c.camera_id.in_(gone)))
            for camera_id, (worker_id, device_id) in placement.items():
                old = current.get(camera_id)
                if old is not None and (old.worker_id, old.device_id) == (worker_id, device_id):
                    continue
                values = {"worker_id": worker_id, "device_id": device_id, "assigned_at": now}
                if old is None:
                    connection.execute(insert(assignments).values(camera_id=camera_id, **values))
                else:
                    connection.execute(
                        update(assignments).where(assignments.c.camera_id == camera_id).values(**values)
                    )

    def load_assignments(self) -> dict[str, tuple[str, str]]:
        """Every stored assignment, ``{camera_id: (worker_id, device_id)}`` as set_assignments takes it."""
        with self._read() as connection:
            rows = connection.execute(select(assignments).order_by(assignments.c.camera_id)).all()
        return {row.camera_id: (row.worker_id, row.device_id) for row in rows}

    def assignment_times(self) -> dict[str, float]:
        """When each camera was placed where it is now (epoch seconds), by camera id."""
        with self._read() as connection:
            rows = connection.execute(select(assignments.c.camera_id, assignments.c.assigned_at)).all()
        return dict(rows)


# ---------------------------------------------------------------------------------------------
# Row <-> dataclass helpers
# ---------------------------------------------------------------------------------------------


def _camera_columns(camera: CameraConfig, enabled: bool) -> dict[str, Any]:
    """The columns of a ``cameras`` row derived from the configuration (all but id and times)."""
    return {
        "name": camera.name,
        "department": camera.department,
        "scene_type": camera.scene_type,
        "enabled": enabled,
        "config_json": camera.model_dump_json(),
    }


def _same_config(stored_json: str, camera: CameraConfig) -> bool:
    """Whether a stored configuration equals ``camera`` (compared after re-validating it)."""
    try:
        stored = CameraConfig.model_validate_json(stored_json)
    except ValidationError:
        return False
    return stored.model_dump_json() == camera.model_dump_json()


_HEALTH_COLUMNS = ("status", "reason", "last_frame_at", "worker_id", "updated_at")


def _record_columns() -> list[Any]:
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


def _record_select() -> Select:
    """SELECT the record columns of cameras, with their health when there is one."""
    return select(*_record_columns()).select_from(
        cameras.outerjoin(camera_health, camera_health.c.camera_id == cameras.c.id)
    )


def _row_to_record(row: Row) -> CameraRecord:
    """Build a record from a row of :func:`_record_columns`; raises StoredCameraInvalid."""
    try:
        camera = CameraConfig.model_validate_json(row.config_json)
    except ValidationError as exc:
        raise StoredCameraInvalid(row.camera_row_id, format_validation_error(exc)) from None
    health = None
    if row.health_status is not None:
        health = CameraHealth(
            camera_id=camera.id,
            status=row.health_status,
            reason=row.health_reason,
            last_frame_at=row.health_last_frame_at,
            worker_id=row.health_worker_id,
            updated_at=row.health_updated_at,
        )
    return CameraRecord(
        camera=camera,
        enabled=bool(row.enabled),
        revision=row.camera_revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        health=health,
    )


def _record_or_none(row: Row) -> CameraRecord | None:
    """Like :func:`_row_to_record`, but a camera that no longer validates is logged and skipped."""
    if row.camera_row_id is None:  # an outer join found no camera
        return None
    try:
        return _row_to_record(row)
    except StoredCameraInvalid as exc:
        log.warning("skipping invalid stored camera", extra={"camera_id": exc.camera_id, "error": str(exc)})
        return None


def _upsert(
    connection: Connection, table: Table, values: dict[str, Any], keys: list[str], keep: Collection[str] = ()
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE every other column except those in ``keep``."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values)
    replace = {name: statement.excluded[name] for name in values if name not in keys and name not in keep}
    connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=replace))
