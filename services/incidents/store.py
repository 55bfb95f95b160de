"""The incident store: incidents and their events in SQLite, evidence JPEGs in a media folder.

Applying an event is idempotent (keyed by ``id:event:revision``) and atomic: the snapshot file is
written (temp file + rename) before the row that points at it is committed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from retina.services.core.incident import IncidentMessage

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    camera_name TEXT NOT NULL,
    department TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    zone TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    ended_at REAL,
    dwell_seconds REAL NOT NULL,
    confidence REAL NOT NULL,
    snapshot_path TEXT,
    revision INTEGER NOT NULL,
    end_reason TEXT,
    dispatch_status TEXT NOT NULL DEFAULT 'new',
    closed_by TEXT,
    close_note TEXT,
    closed_at REAL,
    message_json TEXT NOT NULL,
    clip_path TEXT
);
CREATE INDEX IF NOT EXISTS incidents_by_time ON incidents (started_at);
CREATE INDEX IF NOT EXISTS incidents_by_camera ON incidents (camera_id, started_at);
CREATE TABLE IF NOT EXISTS pending_media (
    path TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    first_try REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_events (
    msg_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    event TEXT NOT NULL,
    revision INTEGER NOT NULL,
    received_at REAL NOT NULL
);
"""


@dataclass
class StoredIncident:
    id: str
    camera_id: str
    camera_name: str
    department: str
    algorithm: str
    zone: str
    state: str
    started_at: float
    last_seen_at: float
    ended_at: float | None
    dwell_seconds: float
    confidence: float
    snapshot_path: str | None
    revision: int
    end_reason: str | None
    dispatch_status: str
    closed_by: str | None
    close_note: str | None
    closed_at: float | None
    message_json: str
    clip_path: str | None

    @property
    def message(self) -> IncidentMessage:
        return IncidentMessage.model_validate_json(self.message_json)


class IncidentStore:
    """SQLite-backed incident store (one writer; safe to call from several threads)."""

    def __init__(self, db_path: str | Path, media_dir: str | Path):
        self.db_path = Path(db_path)
        self.media_dir = Path(media_dir)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(incidents)")}
        if "clip_path" not in columns:  # stores created before evidence clips
            self._db.execute("ALTER TABLE incidents ADD COLUMN clip_path TEXT")

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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for path in pending:
                    self._db.execute(
                        "INSERT OR IGNORE INTO pending_media (path, incident_id, first_try) VALUES (?, ?, ?)",
                        (path, message.id, time.time()),
                    )
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO incident_events"
                    " (msg_id, incident_id, event, revision, received_at) VALUES (?, ?, ?, ?, ?)",
                    (message.msg_id, message.id, message.event, message.revision, time.time()),
                ).rowcount
                if inserted:
                    self._upsert(message, snapshot_path)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return bool(inserted)

    def _upsert(self, m: IncidentMessage, snapshot_path: str | None) -> None:
        row = self._db.execute("SELECT revision FROM incidents WHERE id = ?", (m.id,)).fetchone()
        if row is not None and row[0] > m.revision:
            return  # an older event arriving late changes nothing but the event log
        state = "ended" if m.event == "end" else "open"
        values = (
            m.camera_id,
            m.camera_name,
            m.department,
            m.algorithm,
            m.zone,
            state,
            m.started_at.timestamp(),
            m.last_seen_at.timestamp(),
            m.ended_at.timestamp() if m.ended_at else None,
            m.dwell_seconds,
            m.confidence,
            m.revision,
            m.end_reason,
            m.model_dump_json(by_alias=True),
        )
        if row is None:
            self._db.execute(
                "INSERT INTO incidents (camera_id, camera_name, department, algorithm, zone, state,"
                " started_at,"
                " last_seen_at, ended_at, dwell_seconds, confidence, revision, end_reason, message_json,"
                " snapshot_path, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, snapshot_path, m.id),
            )
        else:
            self._db.execute(
                "UPDATE incidents SET camera_id=?, camera_name=?, department=?, algorithm=?, zone=?, state=?,"
                " started_at=?, last_seen_at=?, ended_at=?, dwell_seconds=?, confidence=?, revision=?,"
                " end_reason=?, message_json=?, snapshot_path=COALESCE(?, snapshot_path) WHERE id=?",
                (*values, snapshot_path, m.id),
            )

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
        with self._lock:
            return self._db.execute("SELECT path, incident_id, first_try FROM pending_media").fetchall()

    def attach_media(self, path: str, incident_id: str, data: bytes | None) -> None:
        """Store a fetched clip or snapshot (or, with None, give up on it) and forget it as pending.

        Raises OSError while the media disk is full; it stays pending and is tried again."""
        if data is not None:
            self._write_media(path, data)
        with self._lock:
            if data is not None:  # it becomes the incident's clip or snapshot if its message names it
                self._db.execute(
                    "UPDATE incidents SET"
                    " clip_path = CASE WHEN json_extract(message_json, '$.clip.path') = :p THEN :p"
                    " ELSE clip_path END,"
                    " snapshot_path = CASE WHEN json_extract(message_json, '$.snapshot.path') = :p THEN :p"
                    " ELSE snapshot_path END"
                    " WHERE id = :id",
                    {"p": path, "id": incident_id},
                )
            self._db.execute("DELETE FROM pending_media WHERE path=?", (path,))

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
        with self._lock:
            open_ids = {r[0] for r in self._db.execute("SELECT id FROM incidents WHERE state='open'")}
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
            with self._lock:
                self._db.execute("UPDATE incidents SET snapshot_path=NULL WHERE snapshot_path=?", (relative,))
                self._db.execute("UPDATE incidents SET clip_path=NULL WHERE clip_path=?", (relative,))
        return deleted

    def get(self, incident_id: str) -> StoredIncident | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
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
        clauses, args = [], []
        for column, value in (
            ("camera_id", camera_id),
            ("department", department),
            ("algorithm", algorithm),
            ("state", state),
        ):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            clauses.append("started_at >= ?")
            args.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM incidents {where} ORDER BY started_at DESC LIMIT ?",
                (*args, max(1, min(limit or 100, 1000))),
            ).fetchall()
        return [StoredIncident(*row) for row in rows]

    def close_out(self, incident_id: str, closed_by: str, note: str) -> StoredIncident | None:
        """A dispatcher closes an incident out; returns it, or None for an unknown id."""
        with self._lock:
            self._db.execute(
                "UPDATE incidents SET dispatch_status='closed', closed_by=?, close_note=?, closed_at=?"
                " WHERE id=?",
                (closed_by, note, time.time(), incident_id),
            )
        return self.get(incident_id)

    def event_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM incident_events").fetchone()[0]

    def events(self) -> list[tuple[str, str, int]]:
        """Every stored (incident id, event, revision), in arrival order."""
        with self._lock:
            return self._db.execute(
                "SELECT incident_id, event, revision FROM incident_events ORDER BY rowid"
            ).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


_COLUMNS = ", ".join(
    [
        "id", "camera_id", "camera_name", "department", "algorithm", "zone", "state", "started_at",
        "last_seen_at", "ended_at", "dwell_seconds", "confidence", "snapshot_path", "revision",
        "end_reason", "dispatch_status", "closed_by", "close_note", "closed_at", "message_json", "clip_path",
    ]
)  # fmt: skip
