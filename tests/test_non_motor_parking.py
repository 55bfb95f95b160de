"""non_motor_parking (非机动车乱停放): bicycles, e-bikes and motorcycles standing in a no-parking zone.

Scripted tracks for the rule's logic (one vehicle over a dwell, a count over a threshold, riders,
passers-by, detector misses), and one real-footage run: a real motorcycle crop composited standing
still onto real street footage, through the real detector and tracker.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from retina.algorithms.non_motor_parking import NonMotorParking
from retina.algorithms.sdk import AlgorithmSpec, AnalysedFrame, CameraContext, TrackedObject
from retina.services.core.config import parse_config
from tests.conftest import MODEL, SHARED, footage

W, H = 640, 480
IMAGE = np.zeros((H, W, 3), dtype=np.uint8)
T0 = 1_790_000_000.0
PAVEMENT = {"name": "pavement", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}


def make(**params) -> NonMotorParking:
    spec = AlgorithmSpec(
        name="non_motor_parking",
        zones=[PAVEMENT],
        params={"dwell_seconds": 20, "update_interval_seconds": 10, "grace_seconds": 4, **params},
    )
    return NonMotorParking.from_spec(CameraContext("cam-1", ZoneInfo("UTC")), spec)


def bike(track_id: int, x: float, y: float = 400, cls: str = "bicycle", conf: float = 0.5) -> TrackedObject:
    return TrackedObject(track_id, "non_motor", cls, conf, (x - 30, y - 40, x + 30, y))


def person(track_id: int, x: float, y: float = 400) -> TrackedObject:
    return TrackedObject(track_id, "person", "person", 0.7, (x - 14, y - 80, x + 14, y))


def run(algo, timeline):
    """timeline: (seconds since T0, [objects]) per analysed frame; returns every event."""
    events = []
    for t, objects in timeline:
        events += algo.process(AnalysedFrame("cam-1", T0 + t, IMAGE, objects))
        events += algo.expire_handovers(T0 + t)
    return events


def frames(start: float, seconds: float, objects, fps: float = 2):
    """``objects(t)`` (or a fixed list) at ``fps`` from ``start`` for ``seconds``."""
    n = round(seconds * fps)
    return [(start + i / fps, objects(start + i / fps) if callable(objects) else objects) for i in range(n)]


# -- one vehicle over the dwell -------------------------------------------------------------------


def test_a_bike_left_standing_is_one_incident_until_it_is_ridden_away():
    algo = make()
    timeline = frames(0, 40, [bike(1, 200, cls="motorcycle")])  # stands 40 s
    timeline += frames(40, 8, lambda t: [bike(1, 200 + 40 * (t - 39.5), cls="motorcycle")])  # ridden off
    events = run(algo, timeline)
    assert events[0].event == "new" and events[-1].event == "end"
    assert {e.event for e in events[1:-1]} <= {"update"}
    assert len({e.incident_id for e in events}) == 1
    new, end = events[0], events[-1]
    assert new.started_at == T0 and new.dwell_seconds == 20 and new.zone == "pavement"
    assert new.details == {
        "mode": "vehicle",
        "count": 1,
        "classes": ["motorcycle"],
        "vehicle_class": "motorcycle",
    }
    assert new.snapshot is not None and new.track_id == 1
    assert end.end_reason == "removed" and end.ended_at == T0 + 39.5


def test_each_standing_bike_is_its_own_incident_and_a_brief_stop_is_none():
    algo = make()
    two = frames(0, 30, [bike(1, 100), bike(2, 400)])
    brief = frames(30, 12, lambda t: [bike(3, 250)] if t < 38 else [])  # 8 s, then gone
    events = run(algo, two + brief)
    news = [e for e in events if e.event == "new"]
    assert sorted(e.track_id for e in news) == [1, 2]
    assert all(e.details["count"] == 2 for e in news)


def test_a_bike_outside_the_zone_or_too_small_is_ignored():
    algo = make()
    outside = frames(0, 40, [bike(1, 200, y=150)])
    tiny = frames(40, 40, [TrackedObject(2, "non_motor", "bicycle", 0.5, (300, 390, 308, 400))])
    assert run(algo, outside + tiny) == []


# -- moving bikes and people with their bikes -------------------------------------------------------


def test_passing_cyclists_and_a_person_walking_a_bike_are_not_parked():
    algo = make(dwell_seconds=10, min_stationary_seconds=5)
    cyclists = frames(0, 30, lambda t: [bike(1, 20 + 20 * t), person(2, 20 + 20 * t, 395),  # riding
                                         bike(3, 620 - 12 * t, 460, cls="motorcycle")])  # fmt: skip
    walking = frames(30, 20, lambda t: [bike(4, 20 + 30 * (t - 30)), person(5, 50 + 30 * (t - 30))])  # 1 m/s
    assert run(algo, cyclists + walking) == []


def test_a_rider_waiting_at_a_light_is_not_parked_but_the_bike_left_behind_is():
    algo = make(dwell_seconds=20, min_stationary_seconds=5)
    waiting = frames(0, 60, [bike(1, 300, cls="motorcycle"), person(2, 300, 395)])  # a minute, ridden
    assert run(algo, waiting) == []
    left = frames(60, 40, [bike(1, 300, cls="motorcycle")])  # the rider walks away, the bike stays
    events = run(algo, left)
    assert [e.event for e in events][:1] == ["new"]
    assert events[0].started_at == T0 + 59.5  # parked when it was last attended, not when it stopped


def test_people_walking_past_a_parked_bike_do_not_reset_or_end_it():
    algo = make()
    timeline = frames(
        0,
        40,
        lambda t: [bike(1, 300)] + ([person(10 + int(t), 250 + 25 * (t % 4), 405)] if t % 4 < 2 else []),
    )
    events = run(algo, timeline)
    assert [e.event for e in events][:1] == ["new"] and events[0].started_at == T0
    assert [e.event for e in events].count("new") == 1


# -- grace: detector misses and a new track id ------------------------------------------------------


def test_short_detector_misses_and_a_new_track_id_keep_one_incident():
    algo = make()
    timeline = frames(0, 12, [bike(1, 200)])
    timeline += frames(12, 3, [])  # missed for 3 s (< grace 4 s)
    timeline += frames(15, 10, [bike(1, 201)])
    timeline += frames(25, 2, [])
    timeline += frames(27, 20, [bike(9, 199)])  # re-found under a new id, same place
    events = run(algo, timeline)
    assert [e.event for e in events].count("new") == 1
    assert len({e.incident_id for e in events}) == 1
    assert events[0].started_at == T0 and events[0].dwell_seconds == 20
    assert all(e.event != "end" for e in events)


def test_a_bike_gone_longer_than_grace_ends_and_a_new_stay_is_a_new_incident():
    algo = make()
    timeline = frames(0, 30, [bike(1, 200)]) + frames(30, 10, []) + frames(40, 30, [bike(1, 200)])
    events = run(algo, timeline)
    assert [e.event for e in events if e.event != "update"] == ["new", "end", "new"]
    assert events[0].incident_id != events[-1].incident_id


# -- a count over the threshold ----------------------------------------------------------------------


def test_more_bikes_than_max_count_is_one_incident_per_zone():
    algo = make(max_count=3, dwell_seconds=20, min_stationary_seconds=10, grace_seconds=4)
    row = [bike(i, 60 + 90 * i, cls="motorcycle" if i % 2 else "bicycle") for i in range(1, 6)]
    allowed = frames(0, 60, row[:3])  # three may stand there
    assert run(algo, allowed) == []

    algo = make(max_count=3, dwell_seconds=20, min_stationary_seconds=10, grace_seconds=4)
    timeline = frames(0, 10, row[:3]) + frames(10, 40, row)  # two more arrive at 10 s
    timeline += frames(50, 10, [*row[:4], bike(6, 580)])  # one leaves, another comes: still too many
    timeline += frames(60, 20, row[:2])  # cleared
    events = run(algo, timeline)
    assert len({e.incident_id for e in events}) == 1
    new, end = events[0], events[-1]
    assert new.event == "new" and end.event == "end" and end.end_reason == "cleared"
    assert new.started_at == T0 + 10  # when the fourth bike began to stand
    assert new.details == {"mode": "count", "count": 5, "max_count": 3, "classes": ["bicycle", "motorcycle"]}
    assert 0.1 < new.bbox[0] < 0.2 and new.bbox[2] > 0.75  # the whole row
    assert end.ended_at == T0 + 59.5


def test_count_mode_does_not_count_moving_or_ridden_bikes():
    algo = make(max_count=1, dwell_seconds=10, min_stationary_seconds=5)
    parked = bike(1, 100)
    timeline = frames(0, 60, lambda t: [parked, bike(2, 20 + 10 * t), bike(3, 400), person(4, 400, 395)])
    assert run(algo, timeline) == []


def test_parameters_are_validated():
    cam = {"id": "c", "url": "x.mp4", "algorithms": [
        {"name": "non_motor_parking", "zones": [PAVEMENT], "params": {"max_count": -1}}]}  # fmt: skip
    (error,) = parse_config({"cameras": [cam]}).camera_errors
    assert "params.max_count: Input should be greater than or equal to 0" in error


# -- real footage --------------------------------------------------------------------------------------

WHOLE_FRAME = [[0, 0], [1, 0], [1, 1], [0, 1]]


def run_clip(video: Path, tmp_path: Path, params: dict, overlays=()) -> list:
    """Compose ``overlays`` onto ``video`` (scenes.py) and run the worker's pipeline over it."""
    from retina.services.cli.scenes import compose, run_scene
    from retina.services.core.config import CameraDefaults, RetinaConfig, validate_camera

    config = RetinaConfig.model_validate({"detector": {"model": str(MODEL)}})
    camera = validate_camera(
        {"id": "cam-nm", "url": "scene.mp4", "algorithms": [
            {"name": "non_motor_parking", "zones": [{"name": "no-parking", "polygon": WHOLE_FRAME}],
             "params": params}]},
        "camera", CameraDefaults(),
    )  # fmt: skip
    if overlays:
        composed = tmp_path / "scene.mp4"
        compose(video, composed, list(overlays), duration=None)
        video = composed
    return run_scene(config, camera, video)


def motorcycle_crop() -> np.ndarray:
    """A real motorcycle photographed by a road camera (../shared/images/vehicle_reid), cut below the
    rider's back: the machine, its plate and tail light (the detector sees a motorcycle, no person)."""
    path = SHARED / "images" / "vehicle_reid" / "motorcycle0235_cam1_0.jpg"
    if not path.exists():
        pytest.skip(f"shared image missing: {path}")
    image = cv2.imread(str(path))
    return image[int(0.4 * image.shape[0]) :]


@pytest.mark.slow
def test_a_real_motorcycle_left_on_the_pavement_is_one_incident(tmp_path: Path):
    from retina.services.cli.scenes import Overlay

    video = footage("sidewalk_shopfront.mp4")
    stands = Overlay(crop="motorcycle", x=0.55, y=0.5, width=0.12, appear_seconds=10, disappear_seconds=45)
    events = run_clip(video, tmp_path, {"dwell_seconds": 20}, [(stands, motorcycle_crop())])
    assert events, "no incident for a motorcycle standing 35 s"
    assert len({e.incident_id for e in events}) == 1, [(e.event, e.track_id, e.bbox) for e in events]
    new, end = events[0], events[-1]
    assert new.event == "new" and end.event == "end"
    # The int8 detector calls this scooter a motorcycle or a bicycle from frame to frame: one family.
    assert new.details["mode"] == "vehicle" and new.details["vehicle_class"] in ("motorcycle", "bicycle")
    started = new.started_at - 1_700_000_000.0  # scenes.EPOCH_ORIGIN: seconds into the clip
    assert 10 <= started <= 13, started
    assert 0.5 < (new.bbox[0] + new.bbox[2]) / 2 < 0.7 and new.bbox[3] > 0.6  # where it stands
    assert end.end_reason == "removed"  # taken away at 45 s; the stay ends when it was last seen
    assert 43 <= end.ended_at - 1_700_000_000.0 <= 45.5


@pytest.mark.slow
def test_the_untouched_shopfront_pavement_raises_nothing(tmp_path: Path):
    events = run_clip(footage("sidewalk_shopfront.mp4"), tmp_path, {})
    assert events == [], [(e.event, e.details, e.bbox) for e in events]
