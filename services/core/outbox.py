"""A bounded on-disk queue of messages accepted for publication (SQLite, one file per worker).

Every incident event is written here first; a publisher removes it only after JetStream has
acknowledged it. If NATS is down, events wait on disk, in order, and survive a restart of the
worker. Publishing uses ``Nats-Msg-Id`` so a re-send after a lost acknowledgement is dropped by the
server: nothing accepted is lost and nothing is delivered twice.

When the queue is over ``max_bytes``, ``update`` events, evidence clips (``media``) and track
features (``feature``) are refused first (a later update or the end event carries the same facts);
``new`` and ``end`` events are still accepted up to twice the limit.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from retina.services.core.bus import DUPLICATE_WINDOW_SECONDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL,
    media_name TEXT,
    media BLOB,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (
    msg_id TEXT PRIMARY KEY,
    sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_by_time ON sent (sent_at);
CREATE TABLE IF NOT EXISTS parked (
    seq INTEGER PRIMARY KEY,
    msg_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload BLOB NOT NULL,
    media_name TEXT,
    media BLOB,
    reason TEXT NOT NULL,
    parked_at REAL NOT NULL
)
"""


# How long the ids of acknowledged messages are kept: the JetStream duplicate window of the streams.
SENT_RETENTION_SECONDS = DUPLICATE_WINDOW_SECONDS


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    msg_id: str
    kind: str
    subject: str
    payload: bytes
    media_name: str | None
    media: bytes | None


class Outbox:
    """Thread-safe, bounded, durable FIFO of messages waiting for a JetStream acknowledgement."""

    def __init__(self, path: str | Path, max_bytes: int = 512 * 1024 * 1024, remember_sent: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._bytes = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM outbox").fetchone()[0]
        self._removed = 0
        self.remember_sent = remember_sent  # keep acknowledged ids a while (:meth:`recent_ids`)

    def append(
        self,
        msg_id: str,
        kind: str,
        subject: str,
        payload: bytes,
        media_name: str | None = None,
        media: bytes | None = None,
    ) -> bool:
        """Durably accept a message; False if refused because the outbox is full (see module doc)."""
        size = len(payload) + len(media or b"")
        with self._lock:
            limit = self.max_bytes if kind in ("update", "media", "feature") else 2 * self.max_bytes
            if self._bytes + size > limit:
                return False
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO outbox (msg_id, kind, subject, payload, media_name, media, size,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (msg_id, kind, subject, payload, media_name, media, size, time.time()),
            )
            if cursor.rowcount:
                self._bytes += size
            return True

    def peek(self, limit: int = 64) -> list[OutboxItem]:
        """The oldest waiting messages, in acceptance order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, msg_id, kind, subject, payload, media_name, media"
                " FROM outbox ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [OutboxItem(*row) for row in rows]

    def recent_ids(self) -> list[str]:
        """The ids of the messages waiting, and (with ``remember_sent``) of those acknowledged in the
        last ``SENT_RETENTION_SECONDS``: what this process, or the one before a restart, sent lately.
        A consumer that lags JetStream by more than that has not seen ids this no longer lists."""
        since = time.time() - SENT_RETENTION_SECONDS
        with self._lock:
            sent = self._db.execute("SELECT msg_id FROM sent WHERE sent_at >= ?", (since,)).fetchall()
            waiting = self._db.execute("SELECT msg_id FROM outbox ORDER BY seq").fetchall()
        return [row[0] for row in sent + waiting]

    def remove(self, seq: int) -> None:
        """Forget a message JetStream has acknowledged (with ``remember_sent``, its id is kept a while:
        :meth:`recent_ids`)."""
        now = time.time()
        with self._lock:
            row = self._db.execute("SELECT size FROM outbox WHERE seq = ?", (seq,)).fetchone()
            if not row:
                return
            with self._transaction():
                if self.remember_sent:
                    self._db.execute(
                        "INSERT OR REPLACE INTO sent (msg_id, sent_at)"
                        " SELECT msg_id, ? FROM outbox WHERE seq = ?",
                        (now, seq),
                    )
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                self._removed += 1
                if self._removed % 256 == 0:
                    self._db.execute("DELETE FROM sent WHERE sent_at < ?", (now - SENT_RETENTION_SECONDS,))
            self._bytes -= row[0]

    def park(self, seq: int, reason: str) -> None:
        """Move a message the server keeps rejecting out of the queue, keeping it (and why) on disk."""
        with self._lock:
            with self._transaction():
                self._db.execute(
                    "INSERT OR REPLACE INTO parked"
                    " (seq, msg_id, kind, subject, payload, media_name, media, reason, parked_at)"
                    " SELECT seq, msg_id, kind, subject, payload, media_name, media, ?, ?"
                    " FROM outbox WHERE seq = ?",
                    (reason, time.time(), seq),
                )
                row = self._db.execute("SELECT size FROM outbox WHERE seq = ?", (seq,)).fetchone()
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            if row:
                self._bytes -= row[0]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (under ``_lock``): committed, or rolled back on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                self._db.execute("ROLLBACK")
            raise

    def parked(self) -> list[tuple[str, str]]:
        """Parked messages: (msg_id, reason)."""
        with self._lock:
            return self._db.execute("SELECT msg_id, reason FROM parked ORDER BY seq").fetchall()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        with self._lock:
            self._db.close()
