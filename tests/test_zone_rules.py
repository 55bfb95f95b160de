"""Crowd gathering, street vending and exposed trash on scripted scenes (their logic, frame by frame)."""

from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from retina.algorithms.sdk import (
    AlgorithmSpec,
    AnalysedFrame,
    CameraContext,
    TrackedObject,
    available_algorithms,
)
from retina.services.core.config import parse_config

W, H = 640, 480
BLANK = np.zeros((H, W, 3), dtype=np.uint8)
T0 = 1_790_000_000.0
PAVEMENT = {"name": "pavement", "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}


def make(name: str, **params):
    spec = AlgorithmSpec(name=name, zones=[PAVEMENT], params=params)
    return available_algorithms()[name].from_spec(CameraContext("cam-1", ZoneInfo("UTC")), spec)


def person(track_id: int, x: float, y: float = 420) -> TrackedObject:
    return TrackedObject(track_id, "person", "person", 0.7, (x - 12, y - 70, x + 12, y))


def thing(track_id: int, cls: str, x: float, y: float = 430, w: float = 50, h: float = 40) -> TrackedObject:
    return TrackedObject(track_id, cls, cls, 0.5, (x - w / 2, y - h, x + w / 2, y))


def run(algo, timeline, image=BLANK):
    events = []
    for t, objects in timeline:
        img = image(t) if callable(image) else image
        events += algo.process(AnalysedFrame("cam-1", T0 + t, img, objects))
    return events


# -- crowd gathering ---------------------------------------------------------------------------


def test_crowd_alerts_once_and_ends_when_it_disperses():
    algo = make(
        "crowd_gathering", max_people=10, dwell_seconds=30, grace_seconds=5, update_interval_seconds=10
    )
    crowd = [person(i, 30 + i * 45) for i in range(12)]
    timeline = [(t, crowd) for t in range(0, 50)]
    timeline += [(50 + t, crowd[:6]) for t in range(0, 3)]  # a short dip: same crowd
    timeline += [(53 + t, crowd) for t in range(0, 10)]
    timeline += [(63 + t, crowd[:4]) for t in range(0, 10)]  # disperses
    events = run(algo, timeline)
    assert events[0].event == "new" and events[-1].event == "end"
    assert len({e.incident_id for e in events}) == 1
    assert events[0].dwell_seconds == 30 and events[0].details == {"people": 12, "max_people": 10}
    assert events[-1].end_reason == "dispersed"


def test_crowd_at_or_below_the_limit_never_alerts():
    algo = make("crowd_gathering", max_people=10, dwell_seconds=10)
    assert run(algo, [(t, [person(i, 30 + i * 45) for i in range(10)]) for t in range(0, 60)]) == []


# -- street vending ----------------------------------------------------------------------------


def test_vendor_with_umbrella_and_table_alerts_with_counts():
    algo = make("street_vending", dwell_seconds=60, still_seconds=10)
    stall = [person(1, 300), thing(2, "umbrella", 330, 380, 80, 60), thing(3, "dining table", 280)]
    events = run(algo, [(t, stall) for t in range(0, 90)])
    new = events[0]
    assert new.event == "new" and new.details["people"] == 1 and new.details["props"] == 2
    assert new.details["prop_classes"] == ["dining table", "umbrella"]
    assert 60 <= new.dwell_seconds <= 61


def test_passers_by_and_bus_stop_queue_do_not_alert():
    algo = make("street_vending", dwell_seconds=30, still_seconds=10)
    walking = [(t, [person(1, 10 + 8 * t), thing(2, "umbrella", 10 + 8 * t, 400)]) for t in range(0, 70)]
    queue = [(70 + t, [person(i, 100 + 40 * i) for i in range(5)] + [thing(9, "bench", 200, 430, 120, 40)])
             for t in range(0, 120)]  # fmt: skip
    assert run(algo, walking + queue) == []


def test_prop_far_from_any_person_is_not_a_stall():
    algo = make("street_vending", dwell_seconds=30, still_seconds=5)
    scene = [person(1, 40), thing(2, "chair", 600)]
    assert run(algo, [(t, scene) for t in range(0, 60)]) == []


# -- exposed trash ------------------------------------------------------------------------------


def pavement_image(rng_seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(rng_seed)
    img = np.full((H, W, 3), 150, np.uint8)
    img += rng.integers(0, 12, (H, W, 1), dtype=np.uint8)  # texture
    return img


BASE = pavement_image()


def with_bag(brightness: int = 0) -> np.ndarray:
    img = cv2.add(BASE, np.full_like(BASE, brightness))
    cv2.rectangle(img, (300, 380), (330, 410), (30, 30, 30), -1)  # a dark bag, 0.3 % of the frame
    return img


def test_bag_left_on_pavement_alerts_then_ends_when_removed():
    algo = make("exposed_trash", dwell_seconds=20, grace_seconds=4)

    def image(t):
        return with_bag() if 10 <= t < 50 else BASE

    events = run(algo, [(t * 0.5, []) for t in range(0, 140)], image)
    assert [e.event for e in events] == ["new", "end"]
    new, end = events
    assert new.zone == "pavement" and 20 <= new.dwell_seconds <= 21
    x1, _, _, y2 = new.bbox
    assert 0.44 < x1 < 0.48 and 0.8 < y2 < 0.88  # where the bag is
    assert end.end_reason == "removed"


def test_person_standing_and_lighting_change_are_not_trash():
    algo = make("exposed_trash", dwell_seconds=10, grace_seconds=4)
    standing = TrackedObject(1, "person", "person", 0.8, (290, 330, 340, 415))  # covers the bag

    def image(t):  # a person stands on the bag's spot 5-25 s; the light jumps by 40 levels at 30 s
        brighter = 40 if t >= 30 else 0
        return with_bag(brighter) if 5 <= t < 25 else cv2.add(BASE, np.full_like(BASE, brighter))

    timeline = [(t * 0.5, [standing] if 5 <= t * 0.5 < 25 else []) for t in range(0, 120)]
    assert run(algo, timeline, image) == []


def test_dedicated_detector_classes_are_used_when_configured():
    algo = make("exposed_trash", dwell_seconds=10, trash_classes=["garbage"])
    bag = TrackedObject(5, "garbage", "garbage", 0.6, (100, 300, 140, 340))
    events = run(algo, [(t, [bag]) for t in range(0, 15)], BASE)
    assert events and events[0].event == "new"


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        (
            "crowd_gathering",
            {"max_people": 0},
            "params.max_people: Input should be greater than or equal to 1",
        ),
        ("street_vending", {"prop_classes": []}, "params.prop_classes: List should have at least 1 item"),
        ("exposed_trash", {"difference_threshold": 300}, "params.difference_threshold: Input should be less"),
        ("exposed_trash", {"dwell_second": 5}, "params.dwell_second: unknown parameter for exposed_trash"),
    ],
)
def test_each_rule_validates_its_parameters(name, params, expected):
    cam = {"id": "c", "url": "x.mp4", "algorithms": [{"name": name, "zones": [PAVEMENT], "params": params}]}
    (error,) = parse_config({"cameras": [cam]}).camera_errors
    assert error.startswith(f"cameras[0].algorithms[0].{expected}")


def test_one_camera_runs_several_rules():
    cam = {"id": "c", "url": "x.mp4", "algorithms": [{"name": n, "zones": [PAVEMENT]} for n in sorted(
        available_algorithms())]}  # fmt: skip
    loaded = parse_config({"cameras": [cam]})
    assert loaded.camera_errors == [] and len(loaded.config.cameras[0].algorithms) == len(
        available_algorithms()
    )


# -- shared pieces: schedules and cooldown --------------------------------------------------------


def test_active_hours_with_weekdays_and_overnight_periods():
    from datetime import datetime

    from retina.algorithms.sdk import ActiveHours

    tz = ZoneInfo("Asia/Shanghai")
    weekend_days = ActiveHours(start="07:00", end="22:00", days=["sat", "sun"])
    assert not weekend_days.contains(datetime(2026, 11, 2, 12, 0, tzinfo=tz))  # Monday noon
    assert weekend_days.contains(datetime(2026, 11, 7, 12, 0, tzinfo=tz))  # Saturday noon
    friday_night = ActiveHours(start="22:00", end="07:00", days=["fri"])
    assert friday_night.contains(datetime(2026, 11, 7, 2, 0, tzinfo=tz))  # Saturday 02:00 is Friday's night
    assert not friday_night.contains(datetime(2026, 11, 8, 2, 0, tzinfo=tz))
    all_monday = ActiveHours(start="00:00", end="00:00", days=["mon"])
    assert all_monday.contains(datetime(2026, 11, 2, 23, 0, tzinfo=tz))


def test_zone_cooldown_suppresses_a_quick_second_alert():
    crowd = [person(i, 30 + i * 45) for i in range(12)]

    def timeline(gap_seconds: int):
        first = [(t, crowd) for t in range(0, 20)]
        quiet = [(20 + t, []) for t in range(0, gap_seconds)]
        second = [(20 + gap_seconds + t, crowd) for t in range(0, 20)]
        return first + quiet + second

    def news(cooldown: float, gap: int) -> int:
        algo = make(
            "crowd_gathering", max_people=10, dwell_seconds=10, grace_seconds=2, cooldown_seconds=cooldown
        )
        return sum(e.event == "new" for e in run(algo, timeline(gap)))

    assert news(cooldown=0, gap=10) == 2
    assert news(cooldown=60, gap=10) == 1
    assert news(cooldown=60, gap=80) == 2


def test_size_and_shape_filters_drop_untrustworthy_boxes():
    sliver = [
        TrackedObject(i, "person", "person", 0.7, (30 + 45 * i, 300, 34 + 45 * i, 420)) for i in range(12)
    ]
    tiny = [
        TrackedObject(i, "person", "person", 0.7, (30 + 45 * i, 410, 36 + 45 * i, 420)) for i in range(12)
    ]
    shaped = make("crowd_gathering", max_people=10, dwell_seconds=5, max_box_aspect_ratio=6)
    sized = make("crowd_gathering", max_people=10, dwell_seconds=5, min_box_area_ratio=0.001)
    assert run(shaped, [(t, sliver) for t in range(0, 20)]) == []  # 4 x 120 px: aspect 30
    assert run(sized, [(t, tiny) for t in range(0, 20)]) == []  # 6 x 10 px: 0.0002 of the frame
    assert run(make("crowd_gathering", max_people=10, dwell_seconds=5), [(t, sliver) for t in range(0, 20)])
