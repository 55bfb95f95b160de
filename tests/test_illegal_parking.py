"""The illegal_parking rule on scripted tracks: stays, lifecycle, re-identification, schedules."""

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from retina.algorithms.illegal_parking import IllegalParking
from retina.algorithms.sdk import ActiveHours, AlgorithmSpec, AnalysedFrame, CameraContext, TrackedObject

W, H = 640, 480
IMAGE = np.zeros((H, W, 3), dtype=np.uint8)
TZ = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 2, 12, 0, tzinfo=TZ).timestamp()  # a Monday, local noon


def make(params=None, active_hours=None) -> IllegalParking:
    spec = AlgorithmSpec(
        name="illegal_parking",
        zones=[{"name": "curb", "polygon": [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]}],
        params={"dwell_seconds": 10, "update_interval_seconds": 5, "lost_grace_seconds": 3, **(params or {})},
        active_hours=active_hours,
    )
    return IllegalParking.from_spec(CameraContext("cam-1", TZ), spec)


def car(track_id: int, x: float, y: float = 400, conf: float = 0.5, cls: str = "car") -> TrackedObject:
    return TrackedObject(track_id, "vehicle", cls, conf, (x - 40, y - 60, x + 40, y))


def run(algo, timeline):
    """timeline: list of (seconds since NOON, [objects]); returns all events (as the worker calls)."""
    events = []
    for t, objects in timeline:
        events += algo.process(AnalysedFrame("cam-1", NOON + t, IMAGE, objects))
        events += algo.expire_handovers(NOON + t)
    return events


def test_standing_car_gives_one_incident_with_lifecycle():
    algo = make()
    timeline = [(t * 0.5, [car(1, 100)]) for t in range(0, 41)]  # 20 s standing
    timeline += [(20.5 + t * 0.5, [car(1, 100 + 30 * t)]) for t in range(1, 5)]  # drives off
    events = run(algo, timeline)
    kinds = [e.event for e in events]
    assert kinds[0] == "new" and kinds[-1] == "end"
    assert set(kinds[1:-1]) == {"update"}
    assert len({e.incident_id for e in events}) == 1
    assert [e.revision for e in events] == list(range(len(events)))
    new, end = events[0], events[-1]
    assert new.dwell_seconds == 10 and new.snapshot is not None
    assert end.end_reason == "moved" and 20 <= end.dwell_seconds <= 21.5
    assert new.bbox[0] < new.bbox[2] <= 1.0 and new.zone == "curb"


def test_passing_and_briefly_stopping_cars_do_not_fire():
    algo = make()
    passing = [(t * 0.5, [car(2, 20 + 25 * t)]) for t in range(0, 24)]
    stop_and_go = [(12 + t * 0.5, [car(3, 150)]) for t in range(0, 16)]  # 8 s < dwell
    stop_and_go += [(20 + t * 0.5, [car(3, 150 + 40 * t)]) for t in range(1, 6)]
    assert run(algo, passing) == []
    assert run(algo, stop_and_go) == []


def test_car_outside_zone_and_people_are_ignored():
    algo = make()
    outside = [(t, [car(4, 500)]) for t in range(0, 30)]
    person = [(t, [TrackedObject(5, "person", "person", 0.9, (60, 300, 90, 400))]) for t in range(30, 60)]
    assert run(algo, outside + person) == []


def test_new_track_id_for_same_car_keeps_the_stay():
    algo = make()
    timeline = [(t * 0.5, [car(1, 100)]) for t in range(0, 16)]  # 7.5 s as track 1
    timeline += [(8 + t * 0.5, []) for t in range(0, 3)]  # lost for 1.5 s (< grace)
    timeline += [(9.5 + t * 0.5, [car(7, 102)]) for t in range(0, 12)]  # re-found as track 7
    events = run(algo, timeline)
    assert [e.event for e in events][:1] == ["new"]
    assert events[0].dwell_seconds >= 10 and events[0].started_at == NOON


def test_lost_vehicle_ends_after_grace_period():
    algo = make()
    timeline = [(t * 0.5, [car(1, 100)]) for t in range(0, 25)]  # seen until 12 s
    timeline += [(12.5 + t * 0.5, []) for t in range(0, 10)]  # gone
    events = run(algo, timeline)
    assert events[-1].event == "end" and events[-1].end_reason == "lost"
    assert events[-1].ended_at == NOON + 12


def test_active_hours_in_camera_timezone():
    night_only = make(active_hours=ActiveHours(start="22:00", end="07:00"))
    assert run(night_only, [(t * 0.5, [car(1, 100)]) for t in range(0, 30)]) == []
    day = make(active_hours=ActiveHours(start="07:00", end="22:00"))
    assert run(day, [(t * 0.5, [car(1, 100)]) for t in range(0, 30)])[0].event == "new"


def test_finish_ends_open_incidents_and_ids_are_stable():
    first, second = make(), make()
    timeline = [(t * 0.5, [car(1, 100)]) for t in range(0, 30)]
    a, b = run(first, timeline), run(second, timeline)
    assert a[0].incident_id == b[0].incident_id
    (end,) = first.finish(NOON + 20, "end_of_stream")
    assert end.event == "end" and end.end_reason == "end_of_stream"
    assert first.finish(NOON + 21, "end_of_stream") == []


def test_a_car_passing_in_front_does_not_take_over_or_end_the_stay():
    algo = make()
    parked = [(t * 0.5, [car(1, 100)]) for t in range(0, 30)]  # incident opens at 10 s
    passing = [(15 + t * 0.5, [car(9, 105 + 45 * t)]) for t in range(0, 4)]  # hides the parked car
    back = [(17 + t * 0.5, [car(1, 100)]) for t in range(0, 20)]  # the parked car is seen again
    events = run(algo, parked + passing + back)
    assert [e.event for e in events].count("new") == 1
    assert all(e.end_reason != "moved" for e in events)
    assert len({e.incident_id for e in events}) == 1


def test_a_situation_that_ends_and_comes_back_gets_a_new_id():
    algo = make()
    first = [(t * 0.5, [car(1, 100)]) for t in range(0, 30)]
    gone = [(15 + t * 0.5, []) for t in range(0, 10)]  # lost beyond the grace period
    again = [(20 + t * 0.5, [car(1, 100)]) for t in range(0, 30)]  # same track id, same spot
    events = run(algo, first + gone + again)
    news = [e for e in events if e.event == "new"]
    assert len(news) == 2 and news[0].incident_id != news[1].incident_id


def test_a_moved_camera_continues_its_open_incident_under_the_same_id():
    """Worker 1 opens an incident; the camera moves; worker 2 sees the same car and continues it."""
    first = make()
    events = run(first, [(t * 0.5, [car(1, 100)]) for t in range(0, 25)])  # 12 s: open at 10 s
    assert events[0].event == "new"
    handed = first.hand_over()
    assert [h.incident_id for h in handed] == [events[0].incident_id]
    assert first.finish(NOON + 13, "shutdown") == []  # handed over: nothing ends on the old worker

    second = make()
    assert second.resume(handed) == []
    # New tracker ids on the new worker; the car is where it was, another car parks elsewhere.
    later = run(second, [(20 + t * 0.5, [car(7, 102), car(8, 300)]) for t in range(0, 25)])
    continued = [e for e in later if e.incident_id == handed[0].incident_id]
    assert continued[0].event == "update" and continued[0].revision == handed[0].revision + 1
    assert continued[0].started_at == NOON  # the dwell counts from the first sighting, on worker 1
    others = [e for e in later if e.incident_id != handed[0].incident_id]
    assert [e.event for e in others] == ["new"]  # a different car is a different incident


def test_a_handed_over_incident_not_seen_again_ends_as_lost():
    first = make()
    run(first, [(t * 0.5, [car(1, 100)]) for t in range(0, 25)])
    second = make()
    second.resume(first.hand_over())
    events = run(second, [(20 + t, []) for t in range(0, 100)])  # the car has gone
    assert [(e.event, e.end_reason) for e in events] == [("end", "lost")]
    assert events[0].revision == 1
