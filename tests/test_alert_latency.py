"""The alert latency a Prometheus rule watches (p99 over 1 s): a worker's incident outbox, published
to a real JetStream, observes from the frame behind each new or updated incident to the ack."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest

from retina.services.core import bus
from retina.services.core.outbox import Outbox
from retina.services.worker import metrics
from retina.services.worker.publisher import OutboxPublisher
from tests.conftest import NatsServer

WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def event(msg_id: str, kind: str, seen_ago: float) -> tuple[str, str, str, bytes]:
    seen = datetime.fromtimestamp(time.time() - seen_ago, UTC).isoformat()
    payload = json.dumps({"id": msg_id, "event": kind, "last_seen_at": seen}).encode()
    return msg_id, kind, f"retina.incidents.cam-1.illegal_parking.{kind}", payload


def samples(kind: str) -> tuple[float, float]:
    """(count, sum) of the alert latency histogram for ``kind`` so far."""
    histogram = {
        s.name: s.value
        for m in metrics.ALERT_LATENCY.collect()
        for s in m.samples
        if s.labels.get("event") == kind
    }
    return histogram.get("retina_alert_latency_seconds_count", 0.0), histogram.get(
        "retina_alert_latency_seconds_sum", 0.0
    )


def test_acknowledged_incident_events_record_their_alert_latency(tmp_path: Path, nats_server: NatsServer):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    for item in (event("a:0", "new", 0.4), event("a:1", "update", 2.0), event("a:2", "end", 90.0)):
        assert outbox.append(*item)
    outbox.append("a:clip", "media", "", b"", media_name="cam-1/a/clip.mp4", media=b"clip")
    before = {kind: samples(kind) for kind in ("new", "update", "end")}

    async def publish() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        publisher = OutboxPublisher(outbox, "incidents")
        publisher.connected(nc, js, await bus.ensure_all(js))
        stop = asyncio.Event()
        running = asyncio.create_task(publisher.run(stop))
        deadline = time.monotonic() + 20
        while len(outbox) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await running
        await nc.close()

    asyncio.run(publish())
    assert len(outbox) == 0, "every message acknowledged"
    (new_count, new_sum), (update_count, update_sum) = samples("new"), samples("update")
    assert new_count - before["new"][0] == 1 and 0.4 <= new_sum - before["new"][1] < 5
    assert update_count - before["update"][0] == 1 and 2.0 <= update_sum - before["update"][1] < 7
    assert samples("end") == before["end"], "end events are not alerts"
    outbox.close()


def test_a_live_stream_is_never_stamped_after_its_frames_arrived(monkeypatch):
    """An RTSP stream's first frame comes late (buffered while the stream is probed) and the next
    ones in a burst: stamped from the first, they would lie in the future and hide the latency."""
    from retina.services.worker import ingest

    now = [1000.0]
    monkeypatch.setattr(ingest.time, "time", lambda: now[0])
    clock = ingest._StreamClock(live=True, realtime=True)
    assert clock.to_epoch(10.0) == 1000.0  # captured at 999.3, delivered 0.7 s late
    stamps = [clock.to_epoch(10.0 + k * 0.04) for k in range(1, 18)]  # the backlog, all at once
    assert all(t <= now[0] for t in stamps) and stamps == sorted(stamps)
    now[0] = 1000.3  # pts 11.0, taken at 1000.3, arrives at once: the backlog caught up
    assert clock.to_epoch(11.0) == pytest.approx(1000.3)
    now[0] = 1000.8
    assert clock.to_epoch(11.5) == pytest.approx(1000.8)
    now[0] = 1001.5  # pts 12.0 late by 0.2 s on the network: keeps its capture time, not its arrival
    assert clock.to_epoch(12.0) == pytest.approx(1001.3)
    files = ingest._StreamClock(live=False, realtime=True)
    files.to_epoch(0.0)
    now[0] = 900.0  # a file keeps its own timeline (it is paced by the clock instead)
    assert files.to_epoch(1.0) == pytest.approx(1002.5)


def test_a_busy_worker_analyses_a_live_cameras_newest_frame_not_a_stale_one(monkeypatch):
    """The detector stalls for 3 analysis intervals; the next frame analysed is the newest the
    camera sampled by then (the older ones were dropped), so the alert is not late by a queue."""
    from retina.services.core.config import parse_config
    from retina.services.worker.detector import Detector
    from retina.services.worker.pipeline import Analyzer, CameraPipeline
    from tests.conftest import MODEL, footage

    camera = {"id": "cam-fresh", "url": str(footage("intersection.mp4")), "loop": True, "analysis_fps": 2}
    camera["algorithms"] = [{"name": "illegal_parking", "zones": [{"name": "all", "polygon": WHOLE}]}]
    config = parse_config({"detector": {"model": str(MODEL)}, "cameras": [camera]}).config
    detector = Detector(config.detector)
    real_detect = detector.detect
    newest_at_stall_end: list[float] = []
    analysed: list[float] = []

    def stalling_detect(images):
        if len(analysed) == 2 and not newest_at_stall_end:  # a busy moment, once
            time.sleep(1.5)
            newest_at_stall_end.append(analyzer.latest_frame("cam-fresh")[1].timestamp)
        return real_detect(images)

    real_analyse = CameraPipeline.analyse

    def recording_analyse(self, frame, *args, **named):
        analysed.append(frame.timestamp)
        return real_analyse(self, frame, *args, **named)

    detector.detect = stalling_detect
    monkeypatch.setattr(CameraPipeline, "analyse", recording_analyse)
    analyzer = Analyzer(
        detector,
        config.tracker,
        config.ingest,
        on_events=lambda *_: None,
        on_status=lambda *_: None,
        realtime=True,  # as the worker runs: files paced to the wall clock, like cameras
        retry_files=False,
    )
    stop = threading.Event()
    loop = threading.Thread(target=analyzer.run, args=(stop,))
    loop.start()
    try:
        analyzer.assign(config.cameras[0])
        deadline = time.monotonic() + 30
        while len(analysed) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        analyzer.release_all("released")
        stop.set()
        loop.join(10)
    assert newest_at_stall_end and len(analysed) >= 4, analysed
    # frame 2 went into the stall; frame 3 is the newest sampled when it ended, not one 0.5-1 s older
    assert analysed[3] >= newest_at_stall_end[0], (analysed, newest_at_stall_end)
    assert analysed[3] - analysed[2] >= 1.0  # frames sampled during the stall were dropped
