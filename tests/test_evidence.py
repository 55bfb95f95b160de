"""Evidence clips cut from encoded packets, and the incident store's media retention."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest

from retina.services.core.incident import BBox, ClipRef, IncidentMessage, SnapshotRef
from retina.services.incidents.store import IncidentStore
from retina.services.worker.evidence import ClipCutter, ClipRequest
from tests.conftest import footage


def cut_clip(video: Path, start: float, end: float) -> tuple[bytes | None, str]:
    answers = []
    cutter = ClipCutter(ring_seconds=end - start + 5)
    cutter.request(ClipRequest("cam", "inc", start, end, lambda r, data, why: answers.append((data, why))))
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            t = float(packet.pts * packet.time_base)
            cutter.ring.add(t, packet)
            cutter.serve(t, stream)
        cutter.serve(t, stream, flush=True)
    assert len(answers) == 1
    return answers[0]


def test_clip_is_remuxed_from_a_keyframe_and_covers_the_window():
    video = footage("road_bus_stop.mp4")
    data, why = cut_clip(video, 20.0, 26.0)
    assert why == "ok"
    with av.open(io.BytesIO(data)) as clip:
        stream = clip.streams.video[0]
        frames = list(clip.decode(stream))
        assert stream.codec_context.name == "h264"  # the camera's own encoding, not re-encoded
    assert frames[0].key_frame
    assert frames[-1].time - frames[0].time >= 6.0 - 0.1
    assert len(data) < video.stat().st_size


def test_ring_holds_only_the_last_seconds():
    video = footage("intersection.mp4")
    _, why = cut_clip(video, 0.0, 2.0)
    assert why == "ok"  # served as soon as the stream passed 2 s, while the start was still held
    cutter = ClipCutter(ring_seconds=3)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is not None:
                cutter.ring.add(float(packet.pts * packet.time_base), packet)
    held = cutter.ring.cut(0, 1e9)
    seconds = float((held[-1].pts - held[0].pts) * held[0].time_base)
    assert held[0].is_keyframe and seconds < 30  # whole GOPs older than the window were dropped


def message(incident_id: str, event: str, camera: str = "cam-1") -> IncidentMessage:
    start = datetime(2026, 11, 2, 4, 0, tzinfo=UTC)
    return IncidentMessage(
        id=incident_id, event=event, revision=0 if event == "new" else 1, camera_id=camera, camera_name="c",
        department="urban-management", location=None, algorithm="illegal_parking", algorithm_version="1.0.0",
        zone="curb", started_at=start, last_seen_at=start + timedelta(seconds=60),
        ended_at=start + timedelta(seconds=90) if event == "end" else None, dwell_seconds=60,
        bbox=BBox(x1=0.1, y1=0.5, x2=0.3, y2=0.8), confidence=0.4, track_id=3,
        clip=ClipRef(path=f"{camera}/{incident_id}/clip.mp4", object="b", start=start, end=start),
    )  # fmt: skip


def test_retention_deletes_oldest_media_first_and_keeps_open_incidents(tmp_path: Path, store_database: str):
    store = IncidentStore(store_database, tmp_path / "media")
    now = time.time()
    for age_days, incident_id, state in (
        (10, "old-open", "new"),
        (9, "old-ended", "end"),
        (1, "new-ended", "end"),
    ):
        store.apply(message(incident_id, "new"), None)
        if state == "end":
            store.apply(message(incident_id, "end"), None)
        assert [p for p, i, _ in store.pending_media() if i == incident_id]
        store.attach_media(f"cam-1/{incident_id}/clip.mp4", incident_id, b"x" * 1000)
        os.utime(tmp_path / "media" / f"cam-1/{incident_id}/clip.mp4", (now - age_days * 86400,) * 2)
    assert store.pending_media() == []
    assert store.get("old-ended").clip_path == "cam-1/old-ended/clip.mp4"

    deleted = store.enforce_retention(max_bytes=2000, max_age_seconds=30 * 86400, now=now)
    assert deleted == ["cam-1/old-ended/clip.mp4"]  # oldest closed first; the open one is kept
    assert store.get("old-ended").clip_path is None
    assert (tmp_path / "media/cam-1/old-open/clip.mp4").exists()
    assert store.enforce_retention(max_bytes=10**9, max_age_seconds=5 * 86400, now=now) == []
    store.apply(message("old-open", "end"), None)
    assert store.enforce_retention(max_bytes=10**9, max_age_seconds=5 * 86400, now=now) == [
        "cam-1/old-open/clip.mp4"
    ]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 2 MB filesystem (tmpfs; needs root, as CI and `make test` run here)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    with path.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def test_a_full_media_disk_loses_no_incident_and_the_snapshot_follows(small_disk: Path, store_database: str):
    store = IncidentStore(store_database, small_disk / "media")
    filler = small_disk / "filler.bin"
    _fill(filler)
    event = message("inc-1", "new").model_copy(
        update={
            "snapshot": SnapshotRef(
                path="cam-1/inc-1/snapshot.jpg", object="s", width=640, height=480, thumbnail_jpeg_base64=""
            )
        }
    )
    assert store.apply(event, b"\xff\xd8" + b"j" * 5000)  # stored although the JPEG could not be
    assert store.get("inc-1") is not None and store.get("inc-1").snapshot_path is None
    pending = {p for p, _, _ in store.pending_media()}
    assert pending == {"cam-1/inc-1/snapshot.jpg", "cam-1/inc-1/clip.mp4"}
    with pytest.raises(OSError):  # still full: it stays pending
        store.attach_media("cam-1/inc-1/snapshot.jpg", "inc-1", b"j" * 5000)
    filler.unlink()
    store.attach_media("cam-1/inc-1/snapshot.jpg", "inc-1", b"j" * 5000)
    assert store.get("inc-1").snapshot_path == "cam-1/inc-1/snapshot.jpg"
    assert store.get("inc-1").clip_path is None  # the clip is still pending, not confused with it


def test_retention_keeps_the_media_disk_from_filling(small_disk: Path, store_database: str):
    store = IncidentStore(store_database, small_disk / "media")
    for incident_id in ("a", "b", "c"):
        store.apply(message(incident_id, "new"), None)
        store.apply(message(incident_id, "end"), None)
        store.attach_media(f"cam-1/{incident_id}/clip.mp4", incident_id, b"x" * 300_000)
    free = shutil.disk_usage(small_disk).free / shutil.disk_usage(small_disk).total
    deleted = store.enforce_retention(max_bytes=10**12, max_age_seconds=10**9, min_free_ratio=free + 0.2)
    assert deleted == ["cam-1/a/clip.mp4", "cam-1/b/clip.mp4"]  # oldest first, only as much as needed
