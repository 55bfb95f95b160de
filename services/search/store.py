"""The feature store of the search service: tracks, their vectors and crops (SQLite + a crop folder).

Everything the FAISS index holds is also here, so the index can be rebuilt from this store at any
time (and this store from the ``FEATURES`` stream). The attributes search filters look at (camera,
time, family, colours, the sharing scope as it was when each track was recorded) are read from here
into the index at start and kept there as records arrive (:class:`RowMeta`); results are checked
against this store again before they are returned.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina.services.core.config import TOKEN_PATTERN
from retina.services.core.features import TRACK_KEY_PATTERN, FeatureRecord
from retina.services.core.plate_text import PlateFacts, PlateQuery
from retina.services.core.validation import quote

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    key TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    department TEXT NOT NULL,
    tracker_id INTEGER NOT NULL,
    family TEXT NOT NULL,
    class_name TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    ended INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    crop_revision INTEGER,
    crop_path TEXT,
    crop_seen_at REAL,
    bbox TEXT,
    colours TEXT NOT NULL DEFAULT '[]',
    scope TEXT NOT NULL DEFAULT '[]',
    shard INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tracks_camera_time ON tracks (camera_id, first_seen);
CREATE INDEX IF NOT EXISTS tracks_camera_tracker ON tracks (camera_id, tracker_id);
CREATE INDEX IF NOT EXISTS tracks_family ON tracks (family, first_seen);
CREATE INDEX IF NOT EXISTS tracks_shard ON tracks (shard);
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    track_key TEXT NOT NULL,
    crop_revision INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    UNIQUE (track_key, crop_revision)
);
CREATE INDEX IF NOT EXISTS vectors_shard ON vectors (shard, id);
CREATE TABLE IF NOT EXISTS track_colours (
    colour TEXT NOT NULL,
    track_key TEXT NOT NULL,
    PRIMARY KEY (colour, track_key)
);
CREATE TABLE IF NOT EXISTS track_scope (
    department TEXT NOT NULL,
    track_key TEXT NOT NULL,
    PRIMARY KEY (department, track_key)
);
CREATE TABLE IF NOT EXISTS track_plates (
    track_key TEXT PRIMARY KEY,
    plate TEXT NOT NULL,
    canonical TEXT NOT NULL,
    colour TEXT NOT NULL,
    confidence REAL NOT NULL,
    reads INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS track_plates_plate ON track_plates (plate);
CREATE INDEX IF NOT EXISTS track_plates_canonical ON track_plates (canonical);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
"""

EVERY_DEPARTMENT = "*"


class UnsafeCropPathError(ValueError):
    """A record whose ids would put its crop outside its camera's folder."""


@dataclass(frozen=True)
class StoredTrack:
    """One indexed track, as search results show it."""

    key: str
    camera_id: str
    department: str
    tracker_id: int
    family: str
    class_name: str
    first_seen: float
    last_seen: float
    ended: bool
    crop_path: str | None
    crop_seen_at: float | None
    bbox: tuple[float, float, float, float] | None
    colours: list[str]
    scope: list[str]  # departments that may see it (owner and shared_with when it was recorded)
    shard: int

    def visible_to(self, department: str) -> bool:
        return department in self.scope or EVERY_DEPARTMENT in self.scope


@dataclass(frozen=True)
class RowMeta:
    """The attributes of a track that search filters look at, kept by the index beside each vector."""

    camera_id: str
    family: str
    first_seen: float
    last_seen: float
    scope: tuple[str, ...]
    colours: tuple[str, ...]


@dataclass(frozen=True)
class PlateHit:
    """A track whose plate matches a plate query; ``exact``: literally, not only through confusions."""

    track: StoredTrack
    plate: PlateFacts
    exact: bool


@dataclass(frozen=True)
class AppliedRecord:
    """What applying one record changed: a new vector to index, and the track's attributes after it
    with its other vectors (to update in the index); nothing for a duplicate."""

    duplicate: bool
    vector_id: int | None = None
    shard: int | None = None
    vector: np.ndarray | None = None
    meta: RowMeta | None = None
    other_vector_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Filters:
    """Search filters; empty means "no restriction"."""

    camera_ids: frozenset[str] = frozenset()
    start: float | None = None
    end: float | None = None
    families: frozenset[str] = frozenset()
    colours: frozenset[str] = frozenset()


_TRACK_COLUMNS = (
    "key, camera_id, department, tracker_id, family, class_name, first_seen, last_seen, ended,"
    " crop_path, crop_seen_at, bbox, colours, scope, shard"
)


def _track(row: tuple) -> StoredTrack:
    (key, camera_id, department, tracker_id, family, class_name, first_seen, last_seen, ended, crop_path,
     crop_seen_at, bbox, colours, scope, shard) = row  # fmt: skip
    return StoredTrack(
        key, camera_id, department, tracker_id, family, class_name, first_seen, last_seen, bool(ended),
        crop_path, crop_seen_at, tuple(json.loads(bbox)) if bbox else None, json.loads(colours),
        json.loads(scope), shard,
    )  # fmt: skip


_META_COLUMNS = "camera_id, family, first_seen, last_seen, scope, colours"


def _meta(row: tuple) -> RowMeta:
    camera_id, family, first_seen, last_seen, scope, colours = row
    scope, colours = tuple(json.loads(scope)), tuple(json.loads(colours))
    return RowMeta(camera_id, family, first_seen, last_seen, scope, colours)


class FeatureStore:
    """Thread-safe SQLite store of track features; crops are JPEG files under ``crop_dir``."""

    def __init__(self, path: Path, crop_dir: Path, shard_seconds: float):
        path.parent.mkdir(parents=True, exist_ok=True)
        crop_dir.mkdir(parents=True, exist_ok=True)
        self.crop_dir = crop_dir
        self.shard_seconds = shard_seconds
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def shard_of(self, epoch: float) -> int:
        """The shard (its start, epoch seconds) a track first seen at ``epoch`` belongs to."""
        return int(epoch // self.shard_seconds * self.shard_seconds)

    # -- writing -------------------------------------------------------------------------------

    def crop_path(self, camera_id: str, track_key: str, crop_revision: int) -> str:
        """The crop file of a track, relative to ``crop_dir``: ``<camera>/<track key>-<revision>.jpg``.

        Built only from checked parts, and checked again once resolved: it must lie in the camera's
        own folder (a record can never write over another camera's crops).
        """
        if not TOKEN_PATTERN.fullmatch(camera_id):
            raise UnsafeCropPathError(f"camera_id: {quote(camera_id)} is not a camera id")
        key = TRACK_KEY_PATTERN.fullmatch(track_key)
        if key is None or key.group(1) != camera_id:
            raise UnsafeCropPathError(f"id: {quote(track_key)} is not a track key of camera {camera_id!r}")
        path = f"{camera_id}/{track_key.replace(':', '_')}-{int(crop_revision)}.jpg"
        camera_dir = (self.crop_dir / camera_id).resolve()
        if (self.crop_dir / path).resolve().parent != camera_dir:
            raise UnsafeCropPathError(f"id: the crop path {path!r} leaves the folder of camera {camera_id!r}")
        return path

    def apply(self, record: FeatureRecord) -> AppliedRecord:
        """Store one record idempotently.

        A redelivered or older revision changes nothing — except that a crop not stored yet is
        still taken (its record may come back after a later, times-only one).
        """
        first_seen, last_seen = record.first_seen.timestamp(), record.last_seen.timestamp()
        vector = record.embedding()
        crop = record.crop_jpeg()
        with self._lock:
            row = self._db.execute(
                "SELECT revision, shard, crop_revision, crop_path FROM tracks WHERE key = ?", (record.id,)
            ).fetchone()
            newer = row is None or record.revision > row[0]
            has_crop = vector is not None and crop is not None
            new_crop = has_crop and (row is None or row[2] is None or record.crop_revision > row[2])
            if not newer and not new_crop:
                return AppliedRecord(duplicate=True)
            shard = row[1] if row is not None else self.shard_of(first_seen)
            crop_path = None
            if new_crop:
                crop_path = self.crop_path(record.camera_id, record.id, record.crop_revision)
                target = self.crop_dir / crop_path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(crop)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if row is None:
                    scope = sorted({record.department, *record.shared_with})
                    self._db.execute(
                        "INSERT INTO tracks (key, camera_id, department, tracker_id, family, class_name,"
                        " first_seen, last_seen, ended, revision, scope, shard)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (record.id, record.camera_id, record.department, record.track_id, record.family,
                         record.class_name, first_seen, last_seen, int(record.ended), record.revision,
                         json.dumps(scope), shard),
                    )  # fmt: skip
                    self._db.executemany(
                        "INSERT OR IGNORE INTO track_scope (department, track_key) VALUES (?, ?)",
                        [(department, record.id) for department in scope],
                    )
                elif newer:
                    self._db.execute(
                        "UPDATE tracks SET last_seen = MAX(last_seen, ?), ended = ?, revision = ?,"
                        " class_name = ?, family = ? WHERE key = ?",
                        (last_seen, int(record.ended), record.revision, record.class_name, record.family,
                         record.id),
                    )  # fmt: skip
                if newer and record.plate is not None:
                    plate = record.plate
                    self._db.execute(
                        "INSERT OR REPLACE INTO track_plates"
                        " (track_key, plate, canonical, colour, confidence, reads) VALUES (?,?,?,?,?,?)",
                        (record.id, plate.text, plate.canonical, plate.colour, plate.confidence, plate.reads),
                    )
                vector_id = None
                if crop_path is not None:
                    self._db.execute(
                        "UPDATE tracks SET crop_revision = ?, crop_path = ?, crop_seen_at = ?, bbox = ?,"
                        " colours = ? WHERE key = ?",
                        (record.crop_revision, crop_path,
                         record.crop_seen_at.timestamp() if record.crop_seen_at else last_seen,
                         json.dumps(record.bbox) if record.bbox else None, json.dumps(record.colours),
                         record.id),
                    )  # fmt: skip
                    self._db.execute("DELETE FROM track_colours WHERE track_key = ?", (record.id,))
                    self._db.executemany(
                        "INSERT INTO track_colours (colour, track_key) VALUES (?, ?)",
                        [(c, record.id) for c in record.colours],
                    )
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO vectors (track_key, crop_revision, shard, embedding)"
                        " VALUES (?, ?, ?, ?)",
                        (record.id, record.crop_revision, shard, vector.astype("<f4").tobytes()),
                    )
                    vector_id = cursor.lastrowid if cursor.rowcount else None
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if crop_path is not None and row is not None and row[3] and row[3] != crop_path:
            (self.crop_dir / row[3]).unlink(missing_ok=True)  # the better crop replaces the old file
        with self._lock:
            meta = self._db.execute(
                f"SELECT {_META_COLUMNS} FROM tracks WHERE key = ?", (record.id,)
            ).fetchone()
            others = tuple(
                i for (i,) in self._db.execute("SELECT id FROM vectors WHERE track_key = ?", (record.id,))
                if i != vector_id
            )  # fmt: skip
        return AppliedRecord(False, vector_id, shard, vector if vector_id else None, _meta(meta), others)

    def drop_shards_before(self, cutoff: float) -> list[int]:
        """Delete every shard that ended before ``cutoff`` (tracks, vectors, crops); return their ids."""
        with self._lock:
            shards = [
                s for (s,) in self._db.execute("SELECT DISTINCT shard FROM tracks").fetchall()
                if s + self.shard_seconds <= cutoff
            ]  # fmt: skip
            for shard in shards:
                crops = self._db.execute(
                    "SELECT crop_path FROM tracks WHERE shard = ? AND crop_path IS NOT NULL", (shard,)
                ).fetchall()
                self._db.execute("BEGIN IMMEDIATE")
                for table in ("track_colours", "track_scope", "track_plates"):
                    self._db.execute(
                        f"DELETE FROM {table} WHERE track_key IN (SELECT key FROM tracks WHERE shard = ?)",
                        (shard,),
                    )
                self._db.execute("DELETE FROM vectors WHERE shard = ?", (shard,))
                self._db.execute("DELETE FROM tracks WHERE shard = ?", (shard,))
                self._db.execute("COMMIT")
                for (crop_path,) in crops:
                    (self.crop_dir / crop_path).unlink(missing_ok=True)
        return shards

    # -- reading -------------------------------------------------------------------------------

    def shards(self) -> list[int]:
        with self._lock:
            return [s for (s,) in self._db.execute("SELECT DISTINCT shard FROM vectors ORDER BY shard")]

    def rows_of_shard(self, shard: int, after_id: int = 0, batch: int = 50_000) -> Iterator[tuple]:
        """(ids, vectors, attributes) of a shard's vectors in id order, in batches (index loading)."""
        columns = ", ".join(f"t.{c.strip()}" for c in _META_COLUMNS.split(","))
        while True:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT v.id, v.embedding, {columns} FROM vectors v JOIN tracks t ON t.key = v.track_key"
                    " WHERE v.shard = ? AND v.id > ? ORDER BY v.id LIMIT ?",
                    (shard, after_id, batch),
                ).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows])
            yield ids, vectors, [_meta(r[2:]) for r in rows]
            after_id = int(ids[-1])

    def shard_summary(self, shard: int, upto_id: int) -> int:
        """How many vectors of a shard have an id up to ``upto_id`` (what its saved index must hold)."""
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM vectors WHERE shard = ? AND id <= ?", (shard, upto_id)
            ).fetchone()[0]

    def counts(self) -> tuple[int, int]:
        """(tracks, vectors)."""
        with self._lock:
            tracks = self._db.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
            vectors = self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        return tracks, vectors

    def tracks_of_vectors(self, ids: list[int]) -> dict[int, StoredTrack]:
        """The track of each vector id."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT v.id, {', '.join('t.' + c.strip() for c in _TRACK_COLUMNS.split(','))}"
                " FROM vectors v JOIN tracks t ON t.key = v.track_key"
                " WHERE v.id IN (SELECT value FROM json_each(?))",
                (json.dumps([int(i) for i in ids]),),
            ).fetchall()
        return {row[0]: _track(row[1:]) for row in rows}

    def track(self, key: str) -> StoredTrack | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_TRACK_COLUMNS} FROM tracks WHERE key = ?", (key,)).fetchone()
        return _track(row) if row else None

    def track_vectors(self, key: str) -> np.ndarray:
        with self._lock:
            rows = self._db.execute("SELECT embedding FROM vectors WHERE track_key = ?", (key,)).fetchall()
        return np.stack([np.frombuffer(r[0], "<f4") for r in rows]) if rows else np.zeros((0, 0), np.float32)

    def find_track(self, camera_id: str, tracker_id: int, start: float, end: float) -> StoredTrack | None:
        """The track of a camera's tracker id that overlaps [start, end] (incident → track)."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_TRACK_COLUMNS} FROM tracks WHERE camera_id = ? AND tracker_id = ?"
                " AND first_seen <= ? AND last_seen >= ? AND crop_path IS NOT NULL"
                " ORDER BY first_seen DESC LIMIT 1",
                (camera_id, tracker_id, end, start),
            ).fetchone()
        return _track(row) if row else None

    def plate_tracks(
        self, department: str, query: PlateQuery, filters: Filters, limit: int, exact_only: bool = False
    ) -> list[PlateHit]:
        """Tracks the department may see whose plate matches ``query`` (its ``tolerant`` pattern
        over the canonical forms; with ``exact_only`` its ``exact`` one), exact matches first, then
        the most confident, then the latest; cameras and time filtered as for image search."""
        # Driven by the plate index (a pattern's literal prefix is a range of it), then each candidate's
        # scope by its primary key: a department's whole scope is never scanned.
        where = ["p.plate GLOB ?" if exact_only else "p.canonical GLOB ?"]
        params: list = [query.exact if exact_only else query.tolerant]
        where.append(
            "EXISTS (SELECT 1 FROM track_scope s WHERE s.department IN (?, ?) AND s.track_key = p.track_key)"
        )
        params += [department, EVERY_DEPARTMENT]
        if filters.camera_ids:
            where.append("t.camera_id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(sorted(filters.camera_ids)))
        if filters.start is not None:
            where.append("t.last_seen >= ?")
            params.append(filters.start)
        if filters.end is not None:
            where.append("t.first_seen <= ?")
            params.append(filters.end)
        columns = ", ".join("t." + c.strip() for c in _TRACK_COLUMNS.split(","))
        sql = (
            f"SELECT p.plate GLOB ? AS exact, p.plate, p.colour, p.confidence, p.reads, {columns}"
            f" FROM track_plates p CROSS JOIN tracks t ON t.key = p.track_key WHERE {' AND '.join(where)}"
            " ORDER BY exact DESC, p.confidence DESC, t.last_seen DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (query.exact, *params, limit)).fetchall()
        return [
            PlateHit(_track(row[5:]), PlateFacts(text=row[1], colour=row[2], confidence=row[3], reads=row[4]),
                     bool(row[0]))
            for row in rows
        ]  # fmt: skip

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
