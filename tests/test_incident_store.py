"""The incident store's database: migrations on SQLite and PostgreSQL, and stores made before them
(or before a migration: 0004 adds department scope and the dispatch loop).

The store's behaviour itself is tested in test_outbox_and_store.py and test_evidence.py, on both
databases (the ``store_database`` fixture, tests/postgres.py).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from retina.services.core.database import alembic_config, sqlite_url, write_transaction
from retina.services.core.database import create_engine as create_database_engine
from retina.services.core.incident import BBox, ClipRef, IncidentMessage
from retina.services.incidents.store import (
    MIGRATIONS_DIR,
    VERSION_TABLE,
    IncidentStore,
    database_url,
    metadata,
)

# The schema the store created with raw SQL before it had migrations (clip_path came later: a store
# made before evidence clips lacks it).
LEGACY_SCHEMA = """
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
    message_json TEXT NOT NULL{clip_path}
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


def message(incident_id: str, event: str, revision: int, clip: bool = False) -> IncidentMessage:
    start = datetime(2026, 11, 2, 4, 0, tzinfo=UTC)
    return IncidentMessage(
        id=incident_id, event=event, revision=revision, camera_id="cam-1", camera_name="Main St",
        department="urban-management", location=None, algorithm="illegal_parking", algorithm_version="1.0.0",
        zone="curb", started_at=start, last_seen_at=start + timedelta(seconds=60 + revision),
        ended_at=start + timedelta(seconds=90) if event == "end" else None, dwell_seconds=60 + revision,
        bbox=BBox(x1=0.1, y1=0.5, x2=0.3, y2=0.8), confidence=0.4, track_id=3,
        clip=ClipRef(path=f"cam-1/{incident_id}/clip.mp4", object="c", start=start, end=start)
        if clip else None,
    )  # fmt: skip


def schema_differences(database_url: str) -> list:
    """What Alembic's autogenerate would change to make the database match the store's tables."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_migrations_create_exactly_the_declared_tables(tmp_path: Path, store_database: str):
    IncidentStore(store_database, tmp_path / "media").close()
    IncidentStore(store_database, tmp_path / "media").close()  # opening again migrates nothing
    url = store_database if "://" in store_database else sqlite_url(store_database)
    assert schema_differences(url) == []


def test_events_keep_their_order_of_arrival(tmp_path: Path, store_database: str):
    store = IncidentStore(store_database, tmp_path / "media")
    arrivals = [("b", "new", 0), ("a", "new", 0), ("b", "end", 2), ("b", "update", 1), ("a", "update", 1)]
    for incident_id, event, revision in arrivals:
        assert store.apply(message(incident_id, event, revision), None)
    assert not store.apply(message("a", "new", 0), None)  # a redelivery is not a new arrival
    store.close()
    store = IncidentStore(store_database, tmp_path / "media")
    assert store.events() == arrivals
    assert store.event_count() == 5
    store.close()


@pytest.mark.parametrize("with_clip_path", [False, True], ids=["before-clips", "with-clips"])
def test_a_store_made_before_migrations_is_upgraded_in_place(tmp_path: Path, with_clip_path: bool):
    db = tmp_path / "incidents.sqlite"
    old = sqlite3.connect(db, isolation_level=None)
    old.executescript(LEGACY_SCHEMA.format(clip_path=",\n    clip_path TEXT" if with_clip_path else ""))
    legacy = message("old", "new", 0)
    old.execute(
        "INSERT INTO incidents (id, camera_id, camera_name, department, algorithm, zone, state, started_at,"
        " last_seen_at, ended_at, dwell_seconds, confidence, snapshot_path, revision, end_reason,"
        " message_json) VALUES (?, 'cam-1', 'Main St', 'urban-management', 'illegal_parking', 'curb',"
        " 'open', ?, ?, NULL, 60, 0.4, 'cam-1/old/0.jpg', 0, NULL, ?)",
        ("old", legacy.started_at.timestamp(), legacy.last_seen_at.timestamp(), legacy.model_dump_json()),
    )
    for msg_id, event, revision in (
        ("old:new:0", "new", 0),
        ("gone:new:0", "new", 0),
        ("old:update:1", "update", 1),
    ):
        old.execute(
            "INSERT INTO incident_events VALUES (?, ?, ?, ?, 0)",
            (msg_id, msg_id.split(":")[0], event, revision),
        )
    old.execute("INSERT INTO pending_media VALUES ('cam-1/old/x.mp4', 'old', 5.0)")
    old.close()

    store = IncidentStore(db, tmp_path / "media")  # a plain path, as the old store took
    kept = store.get("old")
    assert (kept.state, kept.snapshot_path, kept.clip_path, kept.dispatch_status) == (
        "open", "cam-1/old/0.jpg", None, "new"
    )  # fmt: skip
    assert kept.message == legacy
    assert store.pending_media() == [("cam-1/old/x.mp4", "old", 5.0)]
    assert not store.apply(message("old", "update", 1), None)  # already stored before the upgrade
    assert store.apply(message("old", "end", 2, clip=True), None)
    store.attach_media("cam-1/old/clip.mp4", "old", b"mp4")
    assert store.get("old").clip_path == "cam-1/old/clip.mp4"
    assert store.events() == [("old", "new", 0), ("gone", "new", 0), ("old", "update", 1), ("old", "end", 2)]
    store.close()
    assert schema_differences(sqlite_url(db)) == []
    with sqlite3.connect(db) as conn:  # readers of the file (tests, benchmarks) still find their tables
        assert conn.execute("SELECT COUNT(*) FROM incident_events").fetchone()[0] == 4
        assert conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()[0] == "0005"


def test_a_store_at_0003_gains_department_scope_and_the_dispatch_loop(tmp_path: Path, store_database: str):
    url = database_url(store_database)
    engine = create_database_engine(url)
    config = alembic_config(url, MIGRATIONS_DIR)
    with write_transaction(engine) as connection:  # the schema of the release before the dispatch loop
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    rows = []
    for incident_id, status in (("open-one", "new"), ("closed-one", "closed")):
        old = json.loads(message(incident_id, "new", 0).model_dump_json(by_alias=True))
        del old["visible_to"]  # messages of that release did not carry it
        rows.append((incident_id, status, json.dumps(old), message(incident_id, "new", 0)))
    with write_transaction(engine) as connection:
        for seq, (incident_id, status, message_json, m) in enumerate(rows, start=1):
            connection.execute(
                text(
                    "INSERT INTO incidents (id, camera_id, camera_name, department, algorithm, zone, state,"
                    " started_at, last_seen_at, dwell_seconds, confidence, revision, dispatch_status,"
                    " closed_by, message_json) VALUES (:id, 'cam-1', 'Main St', 'urban-management',"
                    " 'illegal_parking', 'curb', 'open', :t, :t, 60, 0.4, 0, :status, :by, :json)"
                ),
                {"id": incident_id, "t": m.started_at.timestamp(), "status": status, "json": message_json,
                 "by": "dispatcher-7" if status == "closed" else None},
            )  # fmt: skip
            columns, values = "msg_id, incident_id, event, revision, received_at", ":msg_id, :id, 'new', 0, 5"
            if connection.dialect.name != "postgresql":  # there seq is an identity; SQLite: the store's own
                columns, values = f"{columns}, seq", f"{values}, :seq"
            connection.execute(
                text(f"INSERT INTO incident_events ({columns}) VALUES ({values})"),
                {"msg_id": f"{incident_id}:new:0", "id": incident_id, "seq": seq},
            )
    engine.dispose()

    store = IncidentStore(store_database, tmp_path / "media")
    kept = store.get("open-one")
    assert (kept.visible_to, kept.message.visible_to) == (",urban-management,", ["urban-management"])
    assert [r.id for r in store.list(visible_to=["urban-management"])] == ["open-one", "closed-one"]
    assert store.list(visible_to=["police"]) == []
    (event,) = store.history("open-one")
    assert (event.kind, event.action, event.media_path, event.details) == ("incident", "new", None, {})
    closed = store.get("closed-one")
    assert (closed.dispatch_status, closed.closed_by, closed.close_reason) == ("closed", "dispatcher-7", None)
    assert store.dispatch("closed-one", "reopen", "user:ann").dispatch_status == "reopened"
    assert store.dispatch("open-one", "assign", "user:ann", assignee="team-1").assignee == "team-1"
    assert [m.msg_id for m in store.unpublished_dispatches()] == [
        "closed-one:dispatch:1",
        "open-one:dispatch:1",
    ]
    assert store.apply(message("open-one", "end", 1), None)  # events keep flowing in after the upgrade
    assert store.get("open-one").message.visible_to == ["urban-management"]
    store.close()
    assert schema_differences(url) == []
