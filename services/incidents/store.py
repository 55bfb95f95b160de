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
* ``dispatch_history`` — every step of the dispatch loop (分拨-处置-核查), written in the same
  transaction as the incident's new status, and marked ``published_at`` once JetStream has it (the
  incident service's outbox loop publishes the rest, in order).

The dispatch loop's state machine is :data:`~retina.services.core.incident.DISPATCH_TRANSITIONS`;
:meth:`IncidentStore.dispatch` takes one step. ``incidents.visible_to`` holds the departments that
may see an incident as ``,a,b,`` (``*``: every department), so a scope filter is a ``LIKE``.

City-management cases (案卷) are kept in the same database by :attr:`IncidentStore.cases` (a
:class:`~retina.services.incidents.casebook.CaseBook`, tables ``cases``, ``case_incidents``,
``case_history``): the first event of an incident files it into a case in the same transaction.
The outbox (:meth:`IncidentStore.outbox`) holds both the dispatch steps and the case transitions.
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
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Identity,
    Index,
    Integer,
    Select,
    Table,
    Text,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from retina.services.core.cases import CaseMessage, CasesConfig
from retina.services.core.database import create_engine, migrate, sqlite_url, write_transaction
from retina.services.core.incident import (
    CLOSE_REASONS,
    DISPATCH_TRANSITIONS,
    VERIFY_OUTCOMES,
    DispatchMessage,
    IncidentMessage,
    IncidentPlate,
    allowed_actions,
)
from retina.services.incidents.casebook import CaseBook, case_incidents
from retina.services.incidents.schema import (
    Float8,
    decode_departments,
    encode_departments,
    metadata,
    visible_clause,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "incidents_alembic_version"  # its own, so it may share a PostgreSQL database

# ---------------------------------------------------------------------------------------------
# Schema. The migrations in migrations/versions create exactly these tables; a test compares them.
# ---------------------------------------------------------------------------------------------


# The incident's queryable columns: fields of IncidentMessage (the one definition of an incident),
# each a column of the same name, typed from the field's annotation (str → TEXT, int → INTEGER,
# float → DOUBLE, datetime → DOUBLE epoch seconds, list of departments → TEXT ",a,b,") and NULL where
# the field may be None. The table,
# the upsert and StoredIncident follow this list; a new entry needs an Alembic migration in
# migrations/versions (test_incident_model.py and test_incident_store.py check both).
MESSAGE_COLUMNS = (
    "id",
    "camera_id",
    "camera_name",
    "department",
    "algorithm",
    "zone",
    "started_at",
    "last_seen_at",
    "ended_at",
    "dwell_seconds",
    "confidence",
    "revision",
    "end_reason",
    "track_key",
    "visible_to",
)
_SQL_TYPES = {str: Text, int: Integer, float: Float8, datetime: Float8, list: Text}


def _message_column(name: str) -> Column:
    annotation = IncidentMessage.model_fields[name].annotation
    if typing.get_origin(annotation) is list:  # departments (see encode_departments)
        kinds = {list}
    else:
        kinds = set(typing.get_args(annotation)) or {annotation}
    nullable = type(None) in kinds
    (kind,) = kinds - {type(None)}
    return Column(name, _SQL_TYPES[kind], primary_key=name == "id", nullable=nullable)


def message_values(message: IncidentMessage) -> dict[str, Any]:
    """The :data:`MESSAGE_COLUMNS` of a message, as stored (times as epoch seconds, departments as
    ``,a,b,``)."""
    values = {name: getattr(message, name) for name in MESSAGE_COLUMNS}
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = value.timestamp()
        elif isinstance(value, list):
            values[name] = encode_departments(value)
    return values


incidents = Table(
    "incidents",
    metadata,
    *(_message_column(name) for name in MESSAGE_COLUMNS),
    # What the store adds to the message:
    Column("state", Text, nullable=False),  # "open" or "ended"
    Column("snapshot_path", Text),  # relative to the media folder, once the file is there
    Column("dispatch_status", Text, nullable=False, server_default="new"),  # DISPATCH_STATUSES
    Column("closed_by", Text),  # while closed: who closed it, the note, when, and why
    Column("close_note", Text),
    Column("closed_at", Float8),
    Column("message_json", Text, nullable=False),  # the latest IncidentMessage, by alias
    Column("clip_path", Text),
    Column("assignee", Text),  # the team or person it was last assigned to, and by when
    Column("due_at", Float8),
    Column("close_reason", Text),  # CLOSE_REASONS
    Column("verify_due_at", Float8),  # while verifying: when the platform decides
    Index("incidents_by_time", "started_at"),
    Index("incidents_by_camera", "camera_id", "started_at"),
    Index("incidents_by_dispatch_status", "dispatch_status", "started_at"),
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
    Column("snapshot_path", Text),  # the snapshot the event brought (NULL: none, or stored before 0004)
    Column("details_json", Text),  # the event's facts for the history: dwell, confidence, end reason
    Index("incident_events_by_arrival", "seq", unique=True),
    Index("incident_events_by_incident", "incident_id"),
)

pending_media = Table(
    "pending_media",
    metadata,
    Column("path", Text, primary_key=True),
    Column("incident_id", Text, nullable=False),
    Column("first_try", Float8, nullable=False),
)


dispatch_history = Table(
    "dispatch_history",
    metadata,
    Column("incident_id", Text, primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),  # 1, 2, ... per incident
    Column("at", Float8, nullable=False),  # never earlier than the incident's previous step
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("status", Text, nullable=False),  # the dispatch status after the step
    Column("media_path", Text),  # field photo or verification frame, relative to the media folder
    Column("details_json", Text, nullable=False),
    Column("published_at", Float8),  # NULL until JetStream has acknowledged it
    Index("dispatch_history_to_publish", "published_at", "at"),
)
FALSE_ALARM = "false_alarm"  # the close reason GetDispatchStats counts
DISPATCH_MEDIA_PREFIX = "dispatch-"  # <camera_id>/<incident_id>/dispatch-<seq>.<jpg|png>


class UnknownIncidentError(LookupError):
    """No incident has this id."""


class DispatchRefusedError(Exception):
    """The step is not allowed from the incident's dispatch status (or ``expected_status`` no
    longer holds); the text names the status and the actions allowed from it."""

    def __init__(self, incident_id: str, action: str, status: str, expected_status: str = ""):
        self.status = status
        self.allowed = allowed_actions(status)
        allowed = ", ".join(self.allowed) or "none"
        if expected_status:
            problem = f"expected dispatch status {expected_status!r}, but it is {status!r}"
        else:
            problem = f"cannot {action} an incident whose dispatch status is {status!r}"
        super().__init__(f"incident {incident_id}: {problem} (allowed now: {allowed})")


@dataclasses.dataclass(frozen=True)
class DispatchStatsRow:
    """How one camera's rule fared over a period: incidents it opened, how many of them are closed,
    and how many were closed as false alarms."""

    camera_id: str
    algorithm: str
    incidents: int
    closed: int
    false_alarms: int

    @property
    def false_alarm_ratio(self) -> float:
        """The share of its closed (reviewed) incidents that were false alarms (0 to 1): incidents
        nobody has reviewed yet do not count either way."""
        return self.false_alarms / self.closed if self.closed else 0.0


@dataclasses.dataclass(frozen=True)
class HistoryItem:
    """One entry of an incident's history: an event of its rule (``kind="incident"``: new, update,
    end, with ``at`` when the store received it) or a step of the dispatch loop (``kind="dispatch"``)."""

    at: float
    kind: str
    action: str
    revision: int = 0
    actor: str = ""
    note: str = ""
    status: str = ""
    media_path: str | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


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
    ``cases``: how incidents become city-management cases (the cluster configuration's ``cases``
    section; default: its defaults).
    """

    def __init__(self, database: str | Path, media_dir: str | Path, cases: CasesConfig | None = None):
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
        self.cases = CaseBook(self._engine, self._lock, cases if cases is not None else CasesConfig())

    @property
    def engine(self) -> Engine:
        """The database engine, for read-only reports over the tables (``assessment``)."""
        return self._engine

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
        crop = message.plate.crop if message.plate is not None else None
        if crop is not None and not (self.media_dir / crop.path).is_file():  # each event names it again
            pending.append(crop.path)
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
            facts = {"dwell_seconds": message.dwell_seconds, "confidence": message.confidence}
            if message.end_reason is not None:
                facts["end_reason"] = message.end_reason
            event = {
                "msg_id": message.msg_id,
                "incident_id": message.id,
                "event": message.event,
                "revision": message.revision,
                "received_at": time.time(),
                "snapshot_path": message.snapshot.path if message.snapshot is not None else None,
                "details_json": json.dumps(facts),
            }
            if self._sqlite:  # under SQLite's write lock (BEGIN IMMEDIATE), so never taken twice
                event["seq"] = select(func.coalesce(func.max(incident_events.c.seq), 0) + 1).scalar_subquery()
            inserted = self._insert(connection, incident_events, event)
            if inserted:
                created = self._upsert(connection, message, snapshot_path)
                self.cases.on_incident_event(connection, message, created, event["received_at"])
        return bool(inserted)

    @staticmethod
    def _upsert(connection: Connection, m: IncidentMessage, snapshot_path: str | None) -> bool:
        """Store the message as the incident's latest state; True when this made the incident."""
        query = select(incidents.c.revision, incidents.c.message_json).where(incidents.c.id == m.id)
        stored = connection.execute(query).first()
        if stored is not None and stored.revision > m.revision:
            return False  # an older event arriving late changes nothing but the event log
        if m.plate is None and stored is not None and stored.message_json:
            # A later event without the plate (the incident moved to a worker that has not read it)
            # keeps the one read before.
            plate = json.loads(stored.message_json).get("plate")
            if isinstance(plate, dict):
                m = m.model_copy(update={"plate": IncidentPlate.model_validate(plate)})
        values = message_values(m)
        values.update(
            state="ended" if m.event == "end" else "open", message_json=m.model_dump_json(by_alias=True)
        )
        if stored is None:
            connection.execute(insert(incidents).values(snapshot_path=snapshot_path, **values))
            return True
        if snapshot_path is not None:  # a later event without a snapshot keeps the earlier one
            values["snapshot_path"] = snapshot_path
        connection.execute(update(incidents).where(incidents.c.id == m.id).values(**values))
        return False

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

        Media of incidents still open is never deleted, nor the dispatch loop's photos
        (``dispatch-<seq>.*``) of incidents not closed. Returns the deleted paths.
        """
        now = time.time() if now is None else now
        with self._engine.connect() as connection:
            query = select(incidents.c.id).where(incidents.c.state == "open")
            open_ids = set(connection.execute(query).scalars())
            query = (
                select(dispatch_history.c.media_path)
                .join(incidents, incidents.c.id == dispatch_history.c.incident_id)
                .where(dispatch_history.c.media_path.is_not(None), incidents.c.dispatch_status != "closed")
            )
            in_the_loop = set(connection.execute(query).scalars())
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
            if (len(parts) == 3 and parts[1] in open_ids) or relative in in_the_loop:
                continue
            path.unlink(missing_ok=True)
            total -= stat.st_size
            to_free -= stat.st_size
            deleted.append(relative)
            with self._lock, write_transaction(self._engine) as connection:
                for column in (incidents.c.snapshot_path, incidents.c.clip_path):
                    connection.execute(update(incidents).where(column == relative).values({column: None}))
                if len(parts) == 3:  # the history's links to it (found by incident id)
                    for column in (incident_events.c.snapshot_path, dispatch_history.c.media_path):
                        where = (column.table.c.incident_id == parts[1]) & (column == relative)
                        connection.execute(update(column.table).where(where).values({column.name: None}))
        return deleted

    def media_file(self, relative: str) -> Path | None:
        """The regular file at ``relative`` inside the media folder, or None: also for absolute
        paths, ``..``, symlinks that lead out of the folder and files still being written."""
        if not relative or "\x00" in relative or "\\" in relative:
            return None
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts:
            return None
        root = self.media_dir.resolve()
        try:
            target = (root / path).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if root not in target.parents or target.suffix == ".tmp" or not target.is_file():
            return None
        return target

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
        visible_to: Sequence[str] = (),
        zone: str = "",
        until: float | None = None,
        offset: int = 0,
        dispatch_status: str = "",
    ) -> list[StoredIncident]:
        """Incidents matching every given filter, newest first (``offset`` of them skipped).

        ``department`` is the owner; ``visible_to`` keeps incidents that any of these departments may
        see (recorded with the incident, ``*`` meaning all); started in [``since``, ``until``)."""
        query = select(*_COLUMNS)
        for column, value in (
            (incidents.c.camera_id, camera_id),
            (incidents.c.department, department),
            (incidents.c.algorithm, algorithm),
            (incidents.c.state, state),
            (incidents.c.zone, zone),
            (incidents.c.dispatch_status, dispatch_status),
        ):
            if value:
                query = query.where(column == value)
        query = _in_scope_and_period(query, visible_to, since, until)
        query = query.order_by(incidents.c.started_at.desc(), incidents.c.id.desc())
        query = query.limit(max(1, min(limit or 100, 1000))).offset(max(0, offset))
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [StoredIncident(*row) for row in rows]

    def dispatch_stats(
        self, *, visible_to: Sequence[str] = (), since: float | None = None, until: float | None = None
    ) -> list[DispatchStatsRow]:
        """False alarms per camera and rule (one SQL ``GROUP BY``): the incidents started in
        [``since``, ``until``) that any of ``visible_to`` may see (empty: all), most false alarms first."""
        false_alarms = func.sum(case((incidents.c.close_reason == FALSE_ALARM, 1), else_=0))
        query = select(
            incidents.c.camera_id,
            incidents.c.algorithm,
            func.count().label("incidents"),
            func.sum(case((incidents.c.dispatch_status == "closed", 1), else_=0)).label("closed"),
            false_alarms.label("false_alarms"),
        )
        query = _in_scope_and_period(query, visible_to, since, until)
        query = query.group_by(incidents.c.camera_id, incidents.c.algorithm).order_by(
            false_alarms.desc(), incidents.c.camera_id, incidents.c.algorithm
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            DispatchStatsRow(
                camera_id=row.camera_id,
                algorithm=row.algorithm,
                incidents=int(row.incidents),
                closed=int(row.closed or 0),
                false_alarms=int(row.false_alarms or 0),
            )
            for row in rows
        ]

    def dispatch(
        self,
        incident_id: str,
        action: str,
        actor: str,
        *,
        note: str = "",
        assignee: str = "",
        due_at: float | None = None,
        reason: str = "",
        outcome: str = "",
        photo: bytes | None = None,
        photo_suffix: str = "jpg",
        expected_status: str = "",
        verify_seconds: float = 0.0,
        now: float | None = None,
    ) -> StoredIncident:
        """Take one step of the dispatch loop and return the incident after it.

        The step and the new status are committed together (the step as the incident's next
        ``dispatch_history`` row, to be published); a ``photo`` (checked by the caller) is written to
        ``<camera_id>/<incident_id>/dispatch-<seq>.<photo_suffix>`` before that. Raises
        UnknownIncidentError, DispatchRefusedError (the action is not allowed from the current
        status, or ``expected_status`` is set and differs), ValueError for a step lacking its facts.
        """
        if action not in DISPATCH_TRANSITIONS:
            raise ValueError(f"unknown dispatch action {action!r}")
        now = time.time() if now is None else now
        with self._lock, write_transaction(self._engine) as connection:
            query = select(incidents.c.camera_id, incidents.c.dispatch_status)
            current = connection.execute(
                query.where(incidents.c.id == incident_id).with_for_update()  # one step at a time
            ).first()
            if current is None:
                raise UnknownIncidentError(incident_id)
            status = current.dispatch_status
            if expected_status and status != expected_status:
                raise DispatchRefusedError(incident_id, action, status, expected_status)
            if status not in DISPATCH_TRANSITIONS[action]:
                raise DispatchRefusedError(incident_id, action, status)
            last_seq, last_at = connection.execute(
                select(func.max(dispatch_history.c.seq), func.max(dispatch_history.c.at)).where(
                    dispatch_history.c.incident_id == incident_id
                )
            ).one()
            seq, at = (last_seq or 0) + 1, max(now, last_at or now)
            values, details = _step(
                action, actor, note, assignee, due_at, reason, outcome, verify_seconds, at
            )
            details["previous_status"] = status
            media_path = None
            if photo is not None:
                relative = f"{current.camera_id}/{incident_id}/{DISPATCH_MEDIA_PREFIX}{seq}.{photo_suffix}"
                media_path = self._write_media(relative, photo)
            connection.execute(
                insert(dispatch_history).values(
                    incident_id=incident_id,
                    seq=seq,
                    at=at,
                    action=action,
                    actor=actor,
                    note=note,
                    status=values["dispatch_status"],
                    media_path=media_path,
                    details_json=json.dumps(details),
                )
            )
            connection.execute(update(incidents).where(incidents.c.id == incident_id).values(**values))
            row = connection.execute(select(*_COLUMNS).where(incidents.c.id == incident_id)).one()
        return StoredIncident(*row)

    def history(self, incident_id: str) -> list[HistoryItem] | None:
        """Every event of the incident and every step of its dispatch loop, oldest first; None for
        an unknown id."""
        with self._engine.connect() as connection:
            if (
                connection.execute(select(incidents.c.id).where(incidents.c.id == incident_id)).first()
                is None
            ):
                return None
            events = connection.execute(
                select(incident_events)
                .where(incident_events.c.incident_id == incident_id)
                .order_by(incident_events.c.seq)
            ).all()
            steps = connection.execute(
                select(dispatch_history)
                .where(dispatch_history.c.incident_id == incident_id)
                .order_by(dispatch_history.c.seq)
            ).all()
        items = [
            (
                (e.received_at, 0, e.seq),
                HistoryItem(
                    at=e.received_at,
                    kind="incident",
                    action=e.event,
                    revision=e.revision,
                    media_path=e.snapshot_path,
                    details=json.loads(e.details_json or "{}"),
                ),
            )
            for e in events
        ]
        items += [
            (
                (s.at, 1, s.seq),
                HistoryItem(
                    at=s.at,
                    kind="dispatch",
                    action=s.action,
                    actor=s.actor,
                    note=s.note,
                    status=s.status,
                    media_path=s.media_path,
                    details={"seq": s.seq, **json.loads(s.details_json)},
                ),
            )
            for s in steps
        ]
        return [item for _, item in sorted(items, key=lambda pair: pair[0])]

    def unpublished_dispatches(self, limit: int = 64) -> list[DispatchMessage]:
        """Dispatch steps JetStream has not acknowledged yet, oldest first, as published."""
        query = (
            select(
                dispatch_history,
                incidents.c.department,
                incidents.c.visible_to,
                incidents.c.camera_id,
                incidents.c.algorithm,
                incidents.c.zone,
            )
            .join(incidents, incidents.c.id == dispatch_history.c.incident_id)
            .where(dispatch_history.c.published_at.is_(None))
            .order_by(dispatch_history.c.at, dispatch_history.c.incident_id, dispatch_history.c.seq)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            DispatchMessage(
                incident_id=r.incident_id,
                seq=r.seq,
                at=datetime.fromtimestamp(r.at, UTC),
                action=r.action,
                actor=r.actor,
                note=r.note,
                status=r.status,
                department=r.department,
                visible_to=decode_departments(r.visible_to),
                camera_id=r.camera_id,
                algorithm=r.algorithm,
                zone=r.zone,
                media_path=r.media_path,
                details=json.loads(r.details_json),
            )
            for r in rows
        ]

    def mark_published(self, incident_id: str, seq: int) -> None:
        """JetStream has acknowledged this dispatch step."""
        where = (dispatch_history.c.incident_id == incident_id) & (dispatch_history.c.seq == seq)
        with self._lock, write_transaction(self._engine) as connection:
            connection.execute(update(dispatch_history).where(where).values(published_at=time.time()))

    def outbox(self, limit: int = 64) -> list[DispatchMessage | CaseMessage]:
        """What JetStream has not acknowledged yet — dispatch steps and case transitions — oldest
        first (each incident's and each case's own in order)."""
        pending: list[DispatchMessage | CaseMessage] = [
            *self.unpublished_dispatches(limit),
            *self.cases.unpublished(limit),
        ]
        return sorted(pending, key=lambda message: message.at)[:limit]

    def mark_sent(self, message: DispatchMessage | CaseMessage) -> None:
        """JetStream has acknowledged this message of the outbox."""
        if isinstance(message, CaseMessage):
            self.cases.mark_published(message.case_id, message.seq)
        else:
            self.mark_published(message.incident_id, message.seq)

    def incidents_of_case(self, case_id: str) -> list[tuple[StoredIncident, str, float]]:
        """The incidents of a case, in the order they joined it: (incident, how it joined — opened,
        same_place, nearby —, when)."""
        query = (
            select(*_COLUMNS, case_incidents.c.link, case_incidents.c.linked_at)
            .join(case_incidents, case_incidents.c.incident_id == incidents.c.id)
            .where(case_incidents.c.case_id == case_id)
            .order_by(case_incidents.c.linked_at, incidents.c.started_at)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        width = len(_COLUMNS)
        return [(StoredIncident(*row[:width]), row[width], row[width + 1]) for row in rows]

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


def _in_scope_and_period(
    query: Select, visible_to: Sequence[str], since: float | None, until: float | None
) -> Select:
    """``query`` kept to the incidents that any of ``visible_to`` may see (recorded with each
    incident as ``,a,b,``; ``*`` meaning all; empty: no scope filter) and that started in
    [``since``, ``until``) (either may be None)."""
    if visible_to:
        query = query.where(visible_clause(incidents.c.visible_to, visible_to))
    if since is not None:
        query = query.where(incidents.c.started_at >= since)
    if until is not None:
        query = query.where(incidents.c.started_at < until)
    return query


def _step(
    action: str,
    actor: str,
    note: str,
    assignee: str,
    due_at: float | None,
    reason: str,
    outcome: str,
    verify_seconds: float,
    at: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The incident columns a dispatch step sets (``dispatch_status`` among them) and its details."""
    if action == "assign":
        if not assignee:
            raise ValueError("assign needs an assignee")
        details = {"assignee": assignee, **({"due_at": _iso(due_at)} if due_at is not None else {})}
        values = {
            "dispatch_status": "assigned",
            "assignee": assignee,
            "due_at": due_at,
            "verify_due_at": None,
        }
        return values, details
    if action == "handle":
        if verify_seconds > 0:
            verify_due_at = at + verify_seconds
            details = {"verify_seconds": verify_seconds, "verify_due_at": _iso(verify_due_at)}
            return {"dispatch_status": "verifying", "verify_due_at": verify_due_at}, details
        return {"dispatch_status": "handled", "verify_due_at": None}, {}
    if action == "verify":
        if outcome not in VERIFY_OUTCOMES:
            raise ValueError(f"verify needs an outcome in {sorted(VERIFY_OUTCOMES)}")
        return {"dispatch_status": VERIFY_OUTCOMES[outcome], "verify_due_at": None}, {"outcome": outcome}
    if action == "close":
        if reason not in CLOSE_REASONS:
            raise ValueError(f"close needs a reason in {CLOSE_REASONS}")
        closed = {"closed_by": actor, "close_note": note, "closed_at": at, "close_reason": reason}
        return {"dispatch_status": "closed", "verify_due_at": None, **closed}, {"reason": reason}
    # reopen: it is not closed any more (the history keeps who closed it and why)
    cleared = {"closed_by": None, "close_note": None, "closed_at": None, "close_reason": None}
    return {"dispatch_status": "reopened", "verify_due_at": None, **cleared}, {}
