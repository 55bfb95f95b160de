"""Incident sinks: delivery off the analysis thread, in order, bounded, drained at close."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from retina.algorithms.sdk import IncidentEvent, Snapshot
from retina.services.core.config import CameraConfig, EvidenceConfig
from retina.services.core.outbox import Outbox
from retina.services.worker.evidence import clip_window
from retina.services.worker.sinks import JsonLinesSink, MemorySink, OutboxSink, QueuedSink

CAMERA = CameraConfig.model_validate({"id": "cam-1", "url": "x.mp4"})
EVIDENCE = EvidenceConfig(clip_before_seconds=5, clip_after_seconds=3)


def event(
    kind: str = "new", incident: str = "inc-1", revision: int = 0, snapshot: bool = True
) -> IncidentEvent:
    image = np.full((48, 64, 3), 90, dtype=np.uint8)
    return IncidentEvent(
        event=kind,
        incident_id=incident,
        revision=revision,
        algorithm="illegal_parking",
        algorithm_version="1.0.0",
        zone="kerb",
        started_at=1_700_000_000.0,
        last_seen_at=1_700_000_010.0 + revision,
        ended_at=1_700_000_020.0 if kind == "end" else None,
        dwell_seconds=10.0 + revision,
        bbox=(0.1, 0.2, 0.3, 0.4),
        confidence=0.8,
        track_id=7,
        snapshot=Snapshot(image, (6, 10, 19, 19), [(0, 0), (1, 0), (1, 1)], 1_700_000_010.0)
        if snapshot
        else None,
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class SlowSink(QueuedSink):
    """Writes take ``delay`` seconds each (or wait for ``gate``); records what it wrote, in order."""

    def __init__(self, name: str, delay: float = 0.0, gate: threading.Event | None = None, **kwargs):
        self.delay, self.gate, self.written, self.flushes = delay, gate, [], 0
        super().__init__(name, **kwargs)

    def write(self, camera, event):
        if self.gate is not None:
            self.gate.wait()
        time.sleep(self.delay)
        if event.incident_id == "boom":
            raise RuntimeError("broken event")
        self.written.append((event.incident_id, event.event, event.revision))

    def flush(self):
        self.flushes += 1


def test_deliver_returns_at_once_and_events_leave_in_order():
    sink = SlowSink("test-order", delay=0.02)
    events = [event("new", f"inc-{i}", 0) for i in range(10)] + [
        event("end", f"inc-{i}", 1) for i in range(10)
    ]
    started = time.perf_counter()
    sink.deliver(CAMERA, events)
    assert time.perf_counter() - started < 0.05, "deliver must not wait for the writes (0.4 s here)"
    assert sink.pending() > 0
    assert sink.wait_idle(10)
    assert sink.written == [(e.incident_id, e.event, e.revision) for e in events]
    assert sink.flushes >= 1
    assert metric("retina_incident_sink_queue_depth", sink="test-order") == 0
    assert sink.close() == 0


def test_a_full_queue_refuses_updates_first_and_counts_what_it_refuses(caplog):
    gate = threading.Event()
    sink = SlowSink("test-full", gate=gate, max_queue=4)
    sink.deliver(CAMERA, [event("new", "held")])  # the writer holds this one until the gate opens
    assert sink.wait_idle(0.2) is False
    updates = [event("update", "inc-u", r) for r in range(1, 7)]
    ends = [event("end", f"inc-e{i}", 1) for i in range(6)]
    with caplog.at_level(logging.ERROR, logger="retina.services.worker.sinks"):
        sink.deliver(CAMERA, updates + ends)
    assert metric("retina_incident_sink_dropped_total", sink="test-full", reason="queue_full") == 2 + 2
    refused = {r.msg_id for r in caplog.records if getattr(r, "reason", "") == "queue_full"}
    assert refused == {"inc-u:update:5", "inc-u:update:6", "inc-e4:end:1", "inc-e5:end:1"}
    assert metric("retina_incident_sink_queue_depth", sink="test-full") == 4 + 4 + 1
    gate.set()
    assert sink.close() == 0
    assert len(sink.written) == 1 + 4 + 4


def test_close_drains_what_was_accepted_and_then_refuses():
    sink = SlowSink("test-drain", delay=0.01)
    sink.deliver(CAMERA, [event("update", "inc-1", r) for r in range(1, 31)])
    assert sink.close(timeout=10) == 0
    assert len(sink.written) == 30
    sink.deliver(CAMERA, [event("end", "inc-1", 31)])
    assert metric("retina_incident_sink_dropped_total", sink="test-drain", reason="closed") == 1
    assert len(sink.written) == 30


def test_close_past_its_deadline_names_every_event_it_drops(caplog):
    gate = threading.Event()
    sink = SlowSink("test-deadline", gate=gate)
    events = [event("new", "stuck")] + [event("update", "inc-1", r) for r in range(1, 4)]
    sink.deliver(CAMERA, events)
    time.sleep(0.05)  # the writer has taken the first one and hangs on it
    with caplog.at_level(logging.ERROR, logger="retina.services.worker.sinks"):
        assert sink.close(timeout=0.2) == 3
    dropped = [r.msg_id for r in caplog.records if getattr(r, "reason", "") == "shutdown"]
    assert dropped == ["inc-1:update:1", "inc-1:update:2", "inc-1:update:3"]
    assert metric("retina_incident_sink_dropped_total", sink="test-deadline", reason="shutdown") == 3
    gate.set()  # the event in hand is still finished; nothing after it
    sink._thread.join(2)
    assert sink.written == [("stuck", "new", 0)]


def test_a_failing_event_is_counted_and_the_next_ones_are_delivered():
    sink = SlowSink("test-errors")
    sink.deliver(CAMERA, [event("new", "a"), event("new", "boom"), event("new", "b")])
    assert sink.close() == 0
    assert sink.written == [("a", "new", 0), ("b", "new", 0)]
    assert metric("retina_incident_sink_errors_total", sink="test-errors") == 1


def test_outbox_sink_writes_the_worker_messages_and_asks_for_the_clip(tmp_path: Path, caplog):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    wakes, requests = [], []
    sink = OutboxSink(
        outbox,
        lambda: wakes.append(1),
        "retina-media",
        evidence=EVIDENCE,
        request_clip=lambda *request: requests.append(request),
        name="test-outbox",
    )
    events = [
        event("new"),
        event("update", revision=1, snapshot=False),
        event("end", revision=2, snapshot=False),
    ]
    with caplog.at_level(logging.INFO, logger="retina.services.worker.service"):
        sink.deliver(CAMERA, events)
        assert [r[:3] for r in requests] == [("cam-1", "inc-1", 1_700_000_010.0)]  # on deliver, not later
        assert sink.close() == 0
    lines = [r for r in caplog.records if r.name == "retina.services.worker.service"]
    assert [(r.getMessage(), r.msg_id) for r in lines] == [
        ("incident new", "inc-1:new:0"),
        ("incident update", "inc-1:update:1"),
        ("incident end", "inc-1:end:2"),
    ]
    assert wakes
    items = outbox.peek()
    assert [i.msg_id for i in items] == ["inc-1:new:0", "inc-1:update:1", "inc-1:end:2"]
    new = json.loads(items[0].payload)
    assert items[0].media[:2] == b"\xff\xd8" and items[0].media_name == new["snapshot"]["path"]
    assert new["snapshot"]["object"].startswith("retina-media/")
    start, end = clip_window(EVIDENCE, 1_700_000_010.0)
    assert (start, end) == (1_700_000_005.0, 1_700_000_013.0)
    assert new["clip"]["start"].startswith("2023-11-14T22:13:25")
    assert json.loads(items[1].payload).get("clip") is None

    on_ready = requests[0][3]
    on_ready(type("R", (), {"camera_id": "cam-1", "incident_id": "inc-1"})(), b"mp4 bytes", "ok")
    clip = outbox.peek()[-1]
    assert clip.msg_id == "inc-1:clip" and clip.media == b"mp4 bytes" and clip.subject == ""
    outbox.close()


def test_json_lines_sink_prints_messages_in_order_and_saves_the_snapshot(tmp_path: Path):
    out = io.StringIO()
    sink = JsonLinesSink(out, tmp_path / "media", evidence=EVIDENCE, request_clip=lambda *r: None)
    sink.deliver(CAMERA, [event("new"), event("end", revision=1, snapshot=False)])
    assert sink.close() == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(m["event"], m["revision"]) for m in lines] == [("new", 0), ("end", 1)]
    assert lines[0]["snapshot"]["object"].startswith("local/") and lines[0]["clip"]["path"]
    assert (tmp_path / "media" / lines[0]["snapshot"]["path"]).read_bytes()[:2] == b"\xff\xd8"

    no_media = io.StringIO()
    sink = JsonLinesSink(no_media, None, evidence=EVIDENCE, request_clip=lambda *r: pytest.fail("no clips"))
    sink.deliver(CAMERA, [event("new")])
    sink.close()
    assert json.loads(no_media.getvalue())["clip"] is None


def test_memory_sink_keeps_the_events():
    sink = MemorySink()
    events = [event("new"), event("end", revision=1)]
    sink.deliver(CAMERA, events)
    assert sink.close() == 0 and sink.events == events


def test_the_lease_does_not_import_the_worker_service():
    code = (
        "import sys, retina.services.worker.lease;"
        "assert 'retina.services.worker.service' not in sys.modules, 'lease imports service'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
