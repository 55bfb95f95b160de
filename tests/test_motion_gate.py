"""The motion gate: the detector runs only where something moved, and incidents do not change.

Unit checks pin the gate's decisions on synthetic pictures; the pipeline checks run the engine of
``retina analyze`` (real detector, tracker and illegal_parking) on shared footage with the gate on
and off, and on a still street where a parked car must keep its stay while the detector rests.
The last check is the decoder's share: streams with B-frames leave non-reference frames undecoded.
"""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest

from retina.algorithms.sdk import AlgorithmSpec, IncidentEvent
from retina.services.core.config import CameraConfig, IngestConfig, parse_config
from retina.services.core.motion_config import MotionConfig, MotionOverride, effective_motion
from retina.services.worker import metrics
from retina.services.worker.detector import Detections, Detector
from retina.services.worker.ingest import CameraHealth, CameraSource, FrameBuffer, skips_nonref_frames
from retina.services.worker.motion import MotionGate
from tests.conftest import MODEL, footage

KERB = {"name": "kerb-lower-left", "polygon": [[0.0, 0.5], [0.3, 0.5], [0.3, 1.0], [0.0, 1.0]]}
NONE = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))


def street(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(60, 200, size=(480, 640, 3), dtype=np.uint8)


def step(gate: MotionGate, image: np.ndarray, t: float) -> bool:
    """One sampled frame through the gate, as the analysis loop does it."""
    needed = gate.needs_detection(image, t)
    if needed:
        gate.detected(t, NONE)
    return needed


def test_gate_skips_still_frames_and_rechecks_them_at_the_floor_rate():
    gate = MotionGate("cam-g1", MotionConfig(floor_fps=0.5))
    still = street()
    decisions = [step(gate, still, t * 0.5) for t in range(9)]  # 2 fps for 4 s
    assert decisions == [True, False, False, False, True, False, False, False, True]
    assert gate.skipped == 6 and gate.detections is NONE


def test_gate_sends_a_frame_once_enough_of_it_changed_since_the_detector_last_saw_it():
    gate = MotionGate("cam-g2", MotionConfig(threshold=0.002, floor_fps=0.01))
    still = street()
    assert step(gate, still, 0.0)
    small_change = still.copy()
    small_change[100:108, 100:108] = 255  # 64 px of 307200: below 0.2 %
    assert not step(gate, small_change, 0.5)
    walker = still.copy()
    walker[200:260, 300:330] = 255  # 1800 px: 0.6 %
    assert step(gate, walker, 1.0)
    assert not step(gate, walker, 1.5)  # the detector has seen it standing there
    assert step(gate, still, 2.0)  # it left: the picture differs from the detector's last frame again


def test_zones_region_ignores_motion_away_from_the_rules_zones():
    spec = AlgorithmSpec(name="illegal_parking", zones=[KERB])
    gate = MotionGate("cam-g3", MotionConfig(region="zones", floor_fps=0.01), [spec])
    still = street()
    assert step(gate, still, 0.0)
    traffic = still.copy()
    traffic[50:150, 400:600] = 255  # the far lanes, top right
    assert not step(gate, traffic, 0.5)
    at_kerb = traffic.copy()
    at_kerb[300:400, 150:215] = 0  # a car pulling in, overlapping the kerb zone's edge
    assert step(gate, at_kerb, 1.0)


def test_motion_config_per_camera_override_and_errors_naming_the_field():
    loaded = parse_config(
        {
            "motion": {"threshold": 0.003, "floor_fps": 0.25},
            "cameras": [
                {"id": "busy", "url": "a.mp4", "motion": {"enabled": False}},
                {"id": "kerb", "url": "b.mp4", "motion": {"region": "zones", "floor_fps": 1}},
                {"id": "bad", "url": "c.mp4", "motion": {"threshold": 2, "floor": 1}},
                {"id": "rare", "url": "d.mp4", "motion": {"floor_fps": 0.1}},  # every 10 s: tracks end first
                {"id": "off", "url": "e.mp4", "motion": {"floor_fps": 0.1, "enabled": False}},
            ],
        }
    )
    section = loaded.config.motion
    busy, kerb, off = loaded.config.cameras
    assert not effective_motion(section, busy.motion).enabled
    merged = effective_motion(section, kerb.motion)
    assert (merged.region, merged.floor_fps, merged.threshold) == ("zones", 1.0, 0.003)
    assert effective_motion(section, None) is section
    assert any(line.startswith("cameras[2].motion.threshold:") for line in loaded.camera_errors)
    assert "cameras[2].motion.floor: unknown field (check the spelling)" in loaded.camera_errors
    assert [line.split(":")[0] for line in loaded.camera_errors if "cameras[3]" in line] == [
        "cameras[3].motion.floor_fps"
    ]
    assert "tracker.lost_seconds (5 s)" in loaded.camera_errors[-1]
    assert not effective_motion(section, off.motion).enabled
    assert MotionOverride().model_dump(exclude_none=True) == {}


# -- the engine of `retina analyze` on real footage ------------------------------------------------


def run(video: Path, motions: dict[str, dict], dwell: float = 10) -> dict[str, list[IncidentEvent]]:
    """The worker's Analyzer (as ``retina analyze`` runs it) over ``video`` with one camera per
    entry of ``motions`` (camera id → its own ``motion``), all at once; each camera's events."""
    from retina.services.cli.scenes import EPOCH_ORIGIN
    from retina.services.worker.pipeline import Analyzer

    algorithm = {"name": "illegal_parking", "zones": [KERB], "params": {"dwell_seconds": dwell}}
    cameras = [
        {"id": camera_id, "url": str(video), "analysis_fps": 2, "algorithms": [algorithm], "motion": motion}
        for camera_id, motion in motions.items()
    ]
    config = parse_config({"detector": {"model": str(MODEL)}, "cameras": cameras}).config
    events: dict[str, list[IncidentEvent]] = {camera_id: [] for camera_id in motions}
    analyzer = Analyzer(
        Detector(config.detector),
        config.tracker,
        config.ingest,
        on_events=lambda camera, found: events[camera.id].extend(found),
        on_status=lambda *_: None,
        realtime=False,
        retry_files=False,
        file_start_epoch=EPOCH_ORIGIN,
        motion=config.motion,
    )
    stop = threading.Event()
    loop = threading.Thread(target=analyzer.run, args=(stop,))
    loop.start()
    for camera in config.cameras:
        analyzer.assign(camera)
    while not analyzer.all_finished():
        stop.wait(0.1)
    analyzer.release_all("end_of_stream")
    stop.set()
    loop.join()
    return events


def stays(events: list[IncidentEvent]) -> list[tuple[str, float, float, str | None]]:
    """Each incident as (zone, start, time it opened, how it ended), in order of opening."""
    reasons = {e.incident_id: e.end_reason for e in events if e.event == "end"}
    opened = [e for e in events if e.event == "new"]
    return [(e.zone, e.started_at, e.last_seen_at, reasons.get(e.incident_id)) for e in opened]


def skipped(camera_id: str) -> float:
    return metrics.FRAMES_SKIPPED.labels(camera_id)._value.get()


def test_incidents_are_the_same_with_and_without_the_gate_on_the_intersection():
    video = footage("intersection.mp4")
    before = skipped("gated"), skipped("ungated")
    events = run(video, {"ungated": {"enabled": False}, "gated": {"region": "zones"}})
    assert skipped("ungated") == before[1]
    assert skipped("gated") - before[0] >= 10  # of 60 frames: the kerb is still part of the time
    ungated, gated = stays(events["ungated"]), stays(events["gated"])
    assert ungated and len(gated) == len(ungated), (gated, ungated)
    for (zone, start, opened, end), (zone_g, start_g, opened_g, end_g) in zip(ungated, gated, strict=True):
        assert zone_g == zone and end_g == end == "moved"
        assert abs(start_g - start) <= 0.5 and abs(opened_g - opened) <= 0.5  # one analysis interval


@pytest.fixture(scope="module")
def still_street(tmp_path_factory) -> Path:
    """40 s of the intersection's first picture, unchanged (a car stands at the kerb), 5 fps H.264."""
    with av.open(str(footage("intersection.mp4"))) as source:
        picture = next(source.decode(video=0)).to_ndarray(format="bgr24")
    path = tmp_path_factory.mktemp("still") / "still_street.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for _ in range(200):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")))
        out.mux(stream.encode())
    return path


def test_a_parked_car_keeps_its_stay_on_a_still_street_while_the_detector_rests(still_street):
    detected = metrics.FRAMES_DETECTED.labels("still", "floor")._value.get()
    before = skipped("still")
    events = run(still_street, {"still": {"floor_fps": 0.25}})["still"]
    runs = metrics.FRAMES_DETECTED.labels("still", "floor")._value.get() - detected
    assert 8 <= runs <= 10  # 40 s at the 0.25 fps floor, after the first frame
    assert skipped("still") - before >= 68  # of 80 frames
    kerb = [e for e in events if e.zone == KERB["name"]]
    assert len({e.incident_id for e in kerb}) == 1, kerb
    new, end = kerb[0], kerb[-1]
    assert new.event == "new" and new.last_seen_at - new.started_at == pytest.approx(10, abs=0.5)
    assert end.event == "end" and end.end_reason == "end_of_stream"  # never lost while nothing moved
    assert end.dwell_seconds >= 39


# -- decoding only what the sampling needs -----------------------------------------------------


def decode(video: Path, skip_nonref: bool) -> CameraHealth:
    """One CameraSource over ``video`` at 2 fps, flat out; its health at the end."""
    camera = CameraConfig(id="dec", url=str(video), analysis_fps=2)
    buffer = FrameBuffer("dec", capacity=10_000, drop_oldest=True, ready=threading.Event())
    source = CameraSource(
        camera,
        IngestConfig(skip_nonref_frames=skip_nonref),
        buffer,
        lambda *_: None,
        realtime=False,
        retry_files=False,
    )
    source.start()
    source.join(timeout=60)
    return source.health


def test_streams_with_b_frames_leave_non_reference_frames_undecoded_and_keep_the_sampling():
    video = footage("road_bus_stop.mp4")  # H.264 with B-frames, 25 fps, 48 s
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert skips_nonref_frames(IngestConfig(), 2, stream)
        assert not skips_nonref_frames(IngestConfig(), 10, stream)  # a quarter of 25 fps would not cover 10
        assert not skips_nonref_frames(IngestConfig(skip_nonref_frames=False), 2, stream)
    with av.open(str(footage("intersection.mp4"))) as container:  # no B-frames: nothing to leave out
        assert not skips_nonref_frames(IngestConfig(), 2, container.streams.video[0])
    every, skipping = decode(video, False), decode(video, True)
    assert every.frames_decoded == 1190 and skipping.frames_decoded < 0.6 * every.frames_decoded
    assert abs(skipping.frames_sampled - every.frames_sampled) <= 1 and every.frames_sampled >= 95
