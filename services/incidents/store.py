"""The incident store: incidents and their events in SQL, evidence JPEGs and clips in a media folder.

One :class:`IncidentStore` wraps one database: SQLite by default (``incidents.sqlite`` in the
store's data folder), PostgreSQL at city scale (``postgresql+psycopg://...``, the ``postgres``
extra). The schema is owned by the Alembic migrations next to this file and is upgraded when the
store opens, so a newer retina opens an older database (also one made before migrations existed).

Applying an event is idempotent (keyed by ``id:event:revision``) and atomic: the snapshot file is
written (temp file + rename) before the row that points at it is committed.

Tables:

* ``incidents`` — one row per incident: its latest message as JSON, the message fields one queries
  by as columns (:data:`MESSAGE_COLUMNS`, derived from :class:`IncidentMessage`), and what the
  store adds itself (state, media paths, the dispatch workflow).
* ``incident_events`` — every event stored, keyed by message id (redeliveries are ignored), with
  ``seq`` giving the order of arrival.
* ``pending_media`` — clips and snapshots a message announced that are not in the media folder
  yet (fetched from the object store later).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import threading
import time
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    REAL,
    BigInteger,
    Column,
    Connection,
    Double,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from retina.services.core.database import create_engine, migrate, sqlite_url, write_transaction
from retina.services.core.incident import IncidentMessage

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "incidents_alembic_version"  # its own, so it may share a PostgreSQL database

# ---------------------------------------------------------------------------------------------
# Schema. The migrations in migrations/versions create exactly these tables; a test compares them.
# ---------------------------------------------------------------------------------------------

metadata = MetaData()
# Floating point: DOUBLE PRECISION on PostgreSQL; on SQLite REAL, as the store has always declared it.
Float8 = Double().with_variant(REAL(), "sqlite")

# The incident's queryable columns: fields of IncidentMessage (the one definition of an incident),
# each a column of the same name, typed from the field's annotation (str → TEXT, int → INTEGER,
# float → DOUBLE, datetime → DOUBLE epoch seconds) and NULL where the field may be None. The table,
# the upsert and StoredIncident follow this list; a new entry needs an Alembic migration in
# migrations/versions (test_incident_model.py and test_incident_store.py check both).
MESSAGE_COLUMNS = (
    "id", "camera_id", "camera_name", "department", "algorithm", "zone", "started_at", "last_seen_at",
    "ended_at", "dwell_seconds", "confidence", "revision", "end_reason", "track_key",
)  # fmt: skip
_SQL_TYPES = {str: Text, int: Integer, float: Float8, datetime: Float8}


def _message_column(name: str) -> Column:
    annotation = IncidentMessage.model_fields[name].annotation
    kinds = set(typing.get_args(annotation)) or {annotation}
    nullable = type(None) in kinds
    (kind,) = kinds - {type(None)}
    return Column(name, _SQL_TYPES[kind], primary_key=name == "id", nullable=nullable)


def message_values(message: IncidentMessage) -> dict[str, Any]:
    """The :data:`MESSAGE_COLUMNS` of a message, as stored (times as epoch seconds)."""
    values = {name: getattr(message, name) for name in MESSAGE_COLUMNS}
    return {k: v.timestamp() if isinstance(v, datetime) else v for k, v in values.items()}


incidents = Table(
    "incidents",
    metadata,
    *(_message_column(name) for name in MESSAGE_COLUMNS),
    # What the store adds to the message:
    Column("state", Text, nullable=False),  # "open" or "ended"
    Column("snapshot_path", Text),  # relative to the media folder, once the file is there
    Column("dispatch_status", Text, nullable=False, server_default="new"),  # "new" or "closed"
    Column("closed_by", Text),
    Column("close_note", Text),
    Column("closed_at", Float8),
    Column("message_json", Text, nullable=False),  # the latest IncidentMessage, by alias
    Column("clip_path", Text),
    Index("incidents_by_time", "started_at"),
    Index("incidents_by_camera", "camera_id", "started_at"),
)
# The columns the store adds itself (not fields of the message).
STORE_COLUMNS = tuple(column.name for column in incidents.columns if column.name not in MESSAGE_COLUMNS)

incident_events = Table(
    "incident_events",
    metadata,
    Column("msg_id", Text, primary_key=True),  # id:event:revision
    Column("incident_id", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("received_at", Float8, nullable=False),
    # Arrival order: an identity on PostgreSQL; on SQLite the store writes MAX(seq) + 1 itself.
    Column("seq", BigInteger, Identity(), nullable=False),
    Index("incident_events_by_arrival", "seq", unique=True),
)

pending_media = Table(
    "pending_media",
    metadata,
    Column("path", Text, primary_key=True),
    Column("incident_id", Text, nullable=False),
    Column("first_try", Float8, nullable=False),
)


def _message(row: Any) -> IncidentMessage:
    return IncidentMessage.model_validate_json(row.message_json)


StoredIncident = dataclasses.make_dataclass(
    "StoredIncident",
    [(column.name, Any) for column in incidents.columns],
    namespace={
        "__doc__": "One row of ``incidents``: an attribute per column (MESSAGE_COLUMNS, times as epoch "
        "seconds, then STORE_COLUMNS) and ``message``, the latest IncidentMessage parsed.",
        "__module__": __name__,
        "message": property(_message),
    },
)
_COLUMNS = list(incidents.columns)


def database_url(database: str | Path) -> str:
    """A SQLAlchemy URL for ``database``: a URL as is, anything else is the path of a SQLite file."""
    if isinstance(database, str) and "://" in database:
        return database
    return sqlite_url(database)


class IncidentStore:
    """The incident store on SQLite or PostgreSQL (safe to call from several threads).

    ``database`` is a SQLAlchemy URL (``sqlite:////abs/incidents.sqlite``,
    ``postgresql+psycopg://user:pw@host/db``) or the path of a SQLite file; its folder is created.
    """

    def __init__(self, database: str | Path, media_dir: str | Path):
        self.database_url = database_url(database)
        url = make_url(self.database_url)
        self.db_path = Path(url.database) if url.get_backend_name() == "sqlite" else None
        self.media_dir = Path(media_dir)
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one writer at a time within this process
        self._engine = create_engine(self.database_url)
        self._sqlite = url.get_backend_name() == "sqlite"
        try:
            migrate(self._engine, self.database_url, MIGRATIONS_DIR)
        except BaseException:
            self._engine.dispose()
            raise

    def _insert(self, connection: Connection, table: Table, values: dict[str, Any]) -> int:
        """INSERT ... ON CONFLICT DO NOTHING; the number of rows inserted (0 or 1)."""
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).values(**values).on_conflict_do_nothing()
        return connection.execute(statement.execution_options(preserve_rowcount=True)).rowcount

    def apply(self, message: IncidentMessage, snapshot: bytes | None) -> bool:
        """Record one event; False if this exact event (id, event, revision) was already stored.

        A snapshot that cannot be written (media disk full) never holds the event back: the event
        is stored and the snapshot is fetched again later, like a clip (see ``pending_media``).
        """
        snapshot_path, pending = None, []
        if message.clip is not None:
            pending.append(message.clip.path)
        if snapshot is not None and message.snapshot is not None:
            try:
                snapshot_path = self._write_media(message.snapshot.path, snapshot)
            except OSError as exc:
                log.error(
                    "could not write a snapshot; it will be fetched again later",
                    extra={"incident_id": message.id, "camera_id": message.camera_id, "error": str(exc)},
                )
                pending.append(message.snapshot.path)
        with self._lock, write_transaction(self._engine) as connection:
            for path in pending:
                row = {"path": path, "incident_id": message.id, "first_try": time.time()}
                self._insert(connection, pending_media, row)
            event = {
                "msg_id": message.msg_id,
                "incident_id": message.id,
                "event": message.event,
                "revision": message.revision,
                "received_at": time.time(),
            }
            if self._sqlite:  # under SQLite's write lock (BEGIN IMMEDIATE), so never taken twice
                event["seq"] = select(func.coalesce(func.max(incident_events.c.seq), 0) + 1).scalar_subquery()
            inserted = self._insert(connection, incident_events, event)
            if inserted:
                self._upsert(connection, message, snapshot_path)
        return bool(inserted)

    @staticmethod
    def _upsert(connection: Connection, m: IncidentMessage, snapshot_path: str | None) -> None:
        stored = connection.execute(select(incidents.c.revision).where(incidents.c.id == m.id)).first()
        if stored is not None and stored.revision > m.revision:
            return  # an older event arriving late changes nothing but the event log
        values = message_values(m)
        values.update(
            state="ended" if m.event == "end" else "open", message_json=m.model_dump_json(by_alias=True)
        )
        if stored is None:
            connection.execute(insert(incidents).values(snapshot_path=snapshot_path, **values))
            return
        if snapshot_path is not None:  # a later event without a snapshot keeps the earlier one
            values["snapshot_path"] = snapshot_path
        connection.execute(update(incidents).where(incidents.c.id == m.id).values(**values))

    def _write_media(self, relative: str, data: bytes) -> str:
        target = (self.media_dir / relative).resolve()
        if self.media_dir.resolve() not in target.parents:
            raise ValueError(f"snapshot path escapes the media folder: {relative!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        try:
            temporary.write_bytes(data)
        except OSError:
            temporary.unlink(missing_ok=True)  # a partial file must not keep a full disk full
            raise
        os.replace(temporary, target)
        return relative

    def pending_media(self) -> list[tuple[str, str, float]]:
        """Media announced by a message but not fetched yet: (path, incident id, first try)."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(pending_media.c.path, pending_media.c.incident_id, pending_media.c.first_try)
            ).all()
        return [tuple(row) for row in rows]

    def attach_media(self, path: str, incident_id: str, data: bytes | None) -> None:
        """Store a fetched clip or snapshot (or, with None, give up on it) and forget it as pending.

        Raises OSError while the media disk is full; it stays pending and is tried again."""
        if data is not None:
            self._write_media(path, data)
        with self._lock, write_transaction(self._engine) as connection:
            if data is not None:  # it becomes the incident's clip or snapshot if its message names it
                message_json = connection.execute(
                    select(incidents.c.message_json).where(incidents.c.id == incident_id)
                ).scalar()
                message = json.loads(message_json) if message_json else {}
                values = {
                    column: path
                    for column, key in (("clip_path", "clip"), ("snapshot_path", "snapshot"))
                    if isinstance(message.get(key), dict) and message[key].get("path") == path
                }
                if values:
                    where = incidents.c.id == incident_id
                    connection.execute(update(incidents).where(where).values(**values))
            connection.execute(delete(pending_media).where(pending_media.c.path == path))

    def enforce_retention(
        self,
        max_bytes: int,
        max_age_seconds: float,
        now: float | None = None,
        min_free_ratio: float = 0.0,
    ) -> list[str]:
        """Delete media, oldest first, while over ``max_bytes``, older than ``max_age_seconds``, or
        while less than ``min_free_ratio`` of the media disk is free.

        Media of incidents still open is never deleted. Returns the deleted paths.
        """
        now = time.time() if now is None else now
        with self._engine.connect() as connection:
            query = select(incidents.c.id).where(incidents.c.state == "open")
            open_ids = set(connection.execute(query).scalars())
        files = []
        for path in self.media_dir.rglob("*"):
            with contextlib.suppress(FileNotFoundError):  # replaced or deleted meanwhile
                if path.is_file() and path.suffix != ".tmp":
                    files.append((path, path.stat()))
        files.sort(key=lambda item: item[1].st_mtime)
        total = sum(stat.st_size for _, stat in files)
        usage = shutil.disk_usage(self.media_dir)
        to_free = max(0, int(min_free_ratio * usage.total) - usage.free)
        if to_free > 0:
            log.warning(
                "media disk almost full; deleting the oldest evidence of closed incidents",
                extra={"free_bytes": usage.free, "to_free_bytes": to_free},
            )
        deleted = []
        for path, stat in files:
            if total <= max_bytes and now - stat.st_mtime <= max_age_seconds and to_free <= 0:
                continue
            relative = path.relative_to(self.media_dir).as_posix()
            parts = relative.split("/")  # <camera>/<incident id>/<file>
            if len(parts) == 3 and parts[1] in open_ids:
                continue
            path.unlink(missing_ok=True)
            total -= stat.st_size
            to_free -= stat.st_size
            deleted.append(relative)
            with self._lock, write_transaction(self._engine) as connection:
                for column in (incidents.c.snapshot_path, incidents.c.clip_path):
                    connection.execute(update(incidents).where(column == relative).values({column: None}))
        return deleted

    def get(self, incident_id: str) -> StoredIncident | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(*_COLUMNS).where(incidents.c.id == incident_id)).first()
        return StoredIncident(*row) if row else None

    def list(
        self,
        *,
        camera_id: str = "",
        department: str = "",
        algorithm: str = "",
        state: str = "",
        since: float | None = None,
        limit: int = 100,
    ) -> list[StoredIncident]:
        """Incidents matching every given filter, newest first."""
        query = select(*_COLUMNS)
        for column, value in (
            (incidents.c.camera_id, camera_id),
            (incidents.c.department, department),
            (incidents.c.algorithm, algorithm),
            (incidents.c.state, state),
        ):
            if value:
                query = query.where(column == value)
        if since is not None:
            query = query.where(incidents.c.started_at >= since)
        query = query.order_by(incidents.c.started_at.desc()).limit(max(1, min(limit or 100, 1000)))
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [StoredIncident(*row) for row in rows]

    def close_out(self, incident_id: str, closed_by: str, note: str) -> StoredIncident | None:
        """A dispatcher closes an incident out; returns it, or None for an unknown id."""
        with self._lock, write_transaction(self._engine) as connection:
            connection.execute(
                update(incidents)
                .where(incidents.c.id == incident_id)
                .values(dispatch_status="closed", closed_by=closed_by, close_note=note, closed_at=time.time())
            )
        return self.get(incident_id)

    def event_count(self) -> int:
        with self._engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(incident_events)).scalar_one()

    def events(self) -> list[tuple[str, str, int]]:
        """Every stored (incident id, event, revision), in arrival order."""
        query = select(incident_events.c.incident_id, incident_events.c.event, incident_events.c.revision)
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(incident_events.c.seq)).all()
        return [tuple(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._engine.dispose()
