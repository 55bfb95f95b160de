"""The worker's on-disk outbox and the incident store: durable, bounded, idempotent."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retina.services.core.incident import BBox, IncidentMessage, SnapshotRef
from retina.services.core.outbox import Outbox
from retina.services.incidents.store import IncidentStore, UnknownIncidentError


def test_outbox_keeps_order_and_survives_reopen(tmp_path: Path):
    box = Outbox(tmp_path / "o.sqlite")
    for i in range(3):
        assert box.append(f"id{i}:new:0", "new", "s", b"x" * 10, "m.jpg", b"jpg")
    assert box.append("id0:new:0", "new", "s", b"x")  # a re-append of the same message is a no-op
    box.remove(box.peek(1)[0].seq)
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert [i.msg_id for i in again.peek()] == ["id1:new:0", "id2:new:0"]
    assert again.peek()[0].media == b"jpg"
    assert again.size_bytes == 26


def test_parked_message_leaves_the_queue_but_stays_on_disk(tmp_path: Path):
    box = Outbox(tmp_path / "o.sqlite")
    box.append("a:new:0", "new", "s", b"x" * 10)
    box.append("b:new:0", "new", "s", b"y" * 10)
    box.park(box.peek(1)[0].seq, "maximum payload exceeded")
    assert [i.msg_id for i in box.peek()] == ["b:new:0"] and box.size_bytes == 10
    box.close()
    assert Outbox(tmp_path / "o.sqlite").parked() == [("a:new:0", "maximum payload exceeded")]


def test_full_outbox_refuses_updates_before_new_and_end(tmp_path: Path):
    box = Outbox(tmp_path / "o.sqlite", max_bytes=100)
    assert box.append("a:new:0", "new", "s", b"x" * 90)
    assert not box.append("a:update:1", "update", "s", b"x" * 20)
    assert box.append("a:end:2", "end", "s", b"x" * 20)
    assert not box.append("b:new:0", "new", "s", b"x" * 100)
    assert len(box) == 2


def message(event: str, revision: int, snapshot: bool = False) -> IncidentMessage:
    start = datetime(2026, 11, 2, 4, 0, tzinfo=UTC)
    return IncidentMessage(
        id="inc-1", event=event, revision=revision, camera_id="cam-1", camera_name="Main St",
        department="urban-management", location=None, algorithm="illegal_parking", algorithm_version="1.0.0",
        zone="curb", started_at=start, last_seen_at=start + timedelta(seconds=60 + revision),
        ended_at=start + timedelta(seconds=90) if event == "end" else None, dwell_seconds=60 + revision,
        bbox=BBox(x1=0.1, y1=0.5, x2=0.3, y2=0.8), confidence=0.4, track_id=3,
        snapshot=SnapshotRef(path="cam-1/inc-1/0.jpg", object="b/cam-1/inc-1/0.jpg", width=640, height=480,
                             thumbnail_jpeg_base64="") if snapshot else None,
    )  # fmt: skip


def test_store_is_idempotent_and_ignores_late_older_events(tmp_path: Path, store_database: str):
    store = IncidentStore(store_database, tmp_path / "media")
    assert store.apply(message("new", 0, snapshot=True), b"\xff\xd8jpeg")
    assert not store.apply(message("new", 0, snapshot=True), b"\xff\xd8jpeg")  # redelivery
    assert store.apply(message("end", 2), None)
    assert store.apply(message("update", 1), None)  # late, older: logged, does not reopen
    row = store.get("inc-1")
    assert (row.state, row.revision, row.end_reason) == ("ended", 2, None)
    assert row.snapshot_path == "cam-1/inc-1/0.jpg"
    assert (tmp_path / "media" / "cam-1/inc-1/0.jpg").read_bytes() == b"\xff\xd8jpeg"
    assert store.event_count() == 3
    assert [r.id for r in store.list(state="ended", camera_id="cam-1")] == ["inc-1"]
    assert store.list(state="open") == []


def test_dispatcher_closes_out(tmp_path: Path, store_database: str):
    store = IncidentStore(store_database, tmp_path / "media")
    store.apply(message("new", 0), None)
    row = store.dispatch("inc-1", "close", "dispatcher-7", note="towed", reason="resolved")
    assert (row.dispatch_status, row.closed_by, row.close_note, row.close_reason) == (
        "closed", "dispatcher-7", "towed", "resolved"
    )  # fmt: skip
    with pytest.raises(UnknownIncidentError):
        store.dispatch("nope", "close", "x", reason="resolved")


def test_a_restarted_worker_resumes_nothing_its_own_outbox_already_ended(tmp_path: Path):
    """kill -9 of a worker between an incident's end and its publishing: the scheduler, from the
    store, still hands the incident back as open; the worker's outbox, reopened, knows better."""
    from retina.algorithms.sdk import HandedOverIncident
    from retina.services.worker.service import resumable

    outbox = Outbox(tmp_path / "outbox.sqlite", remember_sent=True)  # as the worker's incident outbox
    for msg_id, kind in [("ended:new:0", "new"), ("ended:end:1", "end"), ("moved-on:update:3", "update"),
                         ("plated:plate:0", "media"), ("ended-later:end:4", "end"),
                         ("sent-end:new:0", "new"), ("sent-end:end:1", "end")]:  # fmt: skip
        outbox.append(msg_id, kind, "retina.incidents.x", b"{}")
    for item in outbox.peek():  # published and acknowledged just before the kill: ids still known
        if item.msg_id.startswith("sent-end:"):
            outbox.remove(item.seq)
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.sqlite", remember_sent=True)  # as the restarted worker opens it

    def incident(incident_id: str, revision: int) -> HandedOverIncident:
        return HandedOverIncident(
            incident_id, "illegal_parking", "kerb", revision, 0.0, 1.0, (0, 0, 1, 1), 0.9, 3
        )

    resume = [incident("ended", 0), incident("moved-on", 1), incident("plated", 0), incident("elsewhere", 2),
              incident("ended-later", 5), incident("sent-end", 0)]  # fmt: skip
    kept = {i.incident_id: i.revision for i in resumable(reopened, "cam-1", resume)}
    # its end waits, or was sent moments ago: stays ended; a later update waits: continue after it;
    # nothing known: as handed over; an end older than what was handed over: resumed as handed over
    assert kept == {"moved-on": 3, "plated": 0, "elsewhere": 2, "ended-later": 5}
    assert resumable(reopened, "cam-1", []) == []
    reopened.close()
