"""The scheduler's database: its tables, and the one open connection pool its two stores share.

Two aggregates live in it: the camera registry (一机一档, :mod:`~retina.services.scheduler.cameras`)
and the scheduler's own workers and assignments (:mod:`~retina.services.scheduler.workers`). One
:class:`SchedulerDatabase` opens it: SQLite by default (``sqlite:////var/lib/retina/registry.sqlite``,
see :func:`~retina.services.core.database.sqlite_url`), PostgreSQL when given a
``postgresql+psycopg://`` URL. The schema is owned by the Alembic migrations in ``migrations/`` and
is upgraded when the database opens (:func:`retina.services.core.database.migrate`), so a newer
retina can open an older database.

Tables:

* ``cameras`` — one row per camera: its validated configuration as JSON (``CameraConfig``) plus
  the columns the list filters use (department, scene_type, enabled, name), each indexed.
* ``camera_algorithms`` — (camera_id, algorithm name) pairs, so "cameras running X" is an index
  lookup rather than a scan of every configuration.
* ``camera_health`` — the last health a worker reported for a camera, with its video quality
  (``quality_json``: the ``retina.v1.CameraQuality`` as JSON).
* ``camera_references`` — each camera's reference view for the scene-change check (a small grey
  PNG), so a camera keeps it whichever worker runs it. Like health it is no change (no revision).
* ``camera_changes`` — the change log: every create, update and delete appends a row with the
  next global revision in the same transaction as the change. Deleted cameras leave their
  ``delete`` row behind (a tombstone), so a watcher that was away still learns about them.
* ``registry_state`` — one row holding the latest revision. Every revisioned write locks it
  first, which serialises writers (also across processes on PostgreSQL) so revisions commit in
  order: a reader that has seen revision N has seen every revision below N.
* ``workers`` and ``assignments`` — the scheduler's own state, so it survives a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql, sqlite

from retina.services.core.database import create_engine, migrate, write_transaction

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

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
    Column("quality_json", Text, nullable=True),  # retina.v1.CameraQuality as JSON; None: not reported
)

camera_references = Table(
    "camera_references",
    metadata,
    Column("camera_id", String(64), ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True),
    Column("image", LargeBinary, nullable=False),  # PNG, grey, the quality monitor's working size
    Column("captured_at", Double, nullable=False),
    Column("source", String(16), nullable=False),  # "auto" or "confirmed"
    Column("worker_id", String(128), nullable=False),
    Column("stored_at", Double, nullable=False),
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
# The open database
# ---------------------------------------------------------------------------------------------


class SchedulerDatabase:
    """The scheduler's database, open and migrated to the newest schema.

    ``database_url`` is a SQLAlchemy URL: ``sqlite:////abs/path/registry.sqlite`` (see
    :func:`~retina.services.core.database.sqlite_url`; the folder is created) or
    ``postgresql+psycopg://user:pw@host/db``.
    :meth:`read` and :meth:`write` open one short transaction each and are safe from any thread;
    writes through one object are serialised (across processes, SQLite's write lock and the
    ``registry_state`` row do that).
    """

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.engine = create_engine(database_url)
        self._write_lock = threading.Lock()  # one writer at a time within this process
        migrate(self.engine, database_url, MIGRATIONS_DIR)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it holds the write lock from its start: BEGIN IMMEDIATE)."""
        with self._write_lock, write_transaction(self.engine) as connection:
            yield connection

    def close(self) -> None:
        """Close the database connections."""
        self.engine.dispose()

    def __enter__(self) -> SchedulerDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_database(database: str | SchedulerDatabase) -> tuple[SchedulerDatabase, bool]:
    """The database a store works on, and whether the store opened it (and so closes it)."""
    if isinstance(database, SchedulerDatabase):
        return database, False
    return SchedulerDatabase(database), True


def upsert(
    connection: Connection, table: Table, values: dict[str, Any], keys: list[str], keep: Collection[str] = ()
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE every other column except those in ``keep``."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values)
    replace = {name: statement.excluded[name] for name in values if name not in keys and name not in keep}
    connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=replace))
