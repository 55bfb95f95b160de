"""exposed_trash on real CCTV at 720p: small objects, no blind warm-up, the reference view, lighting.

The shop-front clip is upscaled to 1280 x 720 and run through the real detector once (boxes cached
for the module; the detector sees every other frame, the rule gets the latest boxes, as under a busy
worker's motion gate); a real dark crop (the black coat of the man in Ultralytics' bus.jpg: the colour and
folds of a black bag) is composited at 25 x 15 and 40 x 30 px onto the pavement where a walker has
just passed. The rule gets the frames and the detector's boxes directly, as a worker hands them over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import av
import cv2
import numpy as np
import pytest

from retina.algorithms.sdk import (
    AlgorithmSpec,
    AnalysedFrame,
    CameraContext,
    IncidentEvent,
    ReferenceView,
    TrackedObject,
    available_algorithms,
    family_of,
)
from retina.services.cli.scenes import ultralytics_asset
from retina.services.core.config import CameraConfig, DetectorConfig, TrackerConfig
from retina.services.core.quality import QualityConfig
from retina.services.worker.detector import Detections, Detector
from retina.services.worker.ingest import SampledFrame
from retina.services.worker.pipeline import CameraPipeline
from retina.services.worker.quality import QualityMonitor, reference_from_proto, reference_to_proto
from tests.conftest import MODEL, footage

T0 = 1_700_000_000.0
SIZE = (1280, 720)
CLIP_SECONDS = 36
DWELL = 15.0
MARGIN = 8.0  # the short-term background settling and the walker's recent box, on top of the dwell
BAG_CROP = (232, 585, 300, 630)  # bus.jpg: the dark coat of the man in black
PAVEMENT = {"name": "pavement", "polygon": [[0.0, 0.2], [1.0, 0.2], [1.0, 1.0], [0.0, 1.0]]}
# Where the walker of 3-5 s has just stepped (25 x 15), and an open part of the pavement (40 x 30).
SMALL = (780, 393, 25, 15)
LARGE = (560, 560, 40, 30)


@dataclass
class Clip:
    times: list[float]
    images: list[np.ndarray]  # BGR, 1280 x 720
    objects: list[list[TrackedObject]]  # the real detector's boxes of each frame
    detections: list[Detections]  # the same, as the detector returned them
    detector: Detector


@pytest.fixture(scope="module")
def clip() -> Clip:
    """The first CLIP_SECONDS of the shop-front clip at 2 fps, at 720p, with the detector's boxes."""
    video = footage("sidewalk_shopfront.mp4")
    detector = Detector(DetectorConfig(model=str(MODEL)))
    times, images, objects, detections, next_due = [], [], [], [], 0.0
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time)
            if t > CLIP_SECONDS:
                break
            if t + 1e-3 < next_due:
                continue
            next_due += 0.5
            image = cv2.resize(frame.to_ndarray(format="bgr24"), SIZE, interpolation=cv2.INTER_CUBIC)
            if len(times) % 2 == 0:
                found = detector.detect([image])[0]
                names = [detector.names[int(c)] for c in found.cls]
                latest = [
                    TrackedObject(i, family_of(n), n, float(s), tuple(float(v) for v in box))
                    for i, (n, s, box) in enumerate(zip(names, found.conf, found.xyxy, strict=True))
                ]
            times.append(t)
            images.append(image)
            objects.append(latest)
            detections.append(found)
    return Clip(times, images, objects, detections, detector)


@pytest.fixture(scope="module")
def bag() -> np.ndarray:
    x1, y1, x2, y2 = BAG_CROP
    return cv2.imread(str(ultralytics_asset("bus.jpg")))[y1:y2, x1:x2].copy()


Edit = Callable[[float, np.ndarray, list[TrackedObject]], np.ndarray]


def place(bag: np.ndarray, where: tuple[int, int, int, int], appear: float, gone: float) -> Edit:
    x, y, w, h = where

    def edit(t: float, image: np.ndarray, _: list[TrackedObject]) -> np.ndarray:
        if appear <= t < gone:
            image[y : y + h, x : x + w] = cv2.resize(bag, (w, h), interpolation=cv2.INTER_AREA)
        return image

    return edit


def replay(
    clip: Clip,
    edits: list[Edit],
    reference: ReferenceView | None = None,
    until: float = CLIP_SECONDS,
    offline: tuple[float, float] = (0.0, 0.0),
    **params,
) -> list[IncidentEvent]:
    """The rule's events over the clip with ``edits`` applied; no frames arrive while ``offline``."""
    spec = AlgorithmSpec(name="exposed_trash", zones=[PAVEMENT], params={"dwell_seconds": DWELL, **params})
    rule = available_algorithms()["exposed_trash"].from_spec(CameraContext("cam-1", ZoneInfo("UTC")), spec)
    events = []
    for t, image, objects in zip(clip.times, clip.images, clip.objects, strict=True):
        if t > until:
            break
        if offline[0] <= t < offline[1]:
            continue
        image = image.copy()
        for edit in edits:
            image = edit(t, image, objects)
        events += rule.process(AnalysedFrame("cam-1", T0 + t, image, objects, reference))
    return events


def covers(event: IncidentEvent, where: tuple[int, int, int, int]) -> bool:
    """Whether the event's box (normalised) holds the centre of the placed object (pixels)."""
    x, y, w, h = where
    x1, y1, x2, y2 = event.bbox
    cx, cy = (x + w / 2) / SIZE[0], (y + h / 2) / SIZE[1]
    return x1 <= cx <= x2 and y1 <= cy <= y2 and (x2 - x1) * SIZE[0] < 3 * w


@pytest.mark.parametrize("where", [SMALL, LARGE], ids=["25x15", "40x30"])
def test_bag_left_after_a_walker_passes_alerts_within_dwell_and_ends_when_removed(clip, bag, where):
    # Default start-up (no warm-up to wait out); the bag appears at 5 s, is taken away at 30 s.
    events = replay(clip, [place(bag, where, 5.0, 30.0)], grace_seconds=4)
    assert [e.event for e in events] == ["new", "end"], events
    new, end = events
    assert new.last_seen_at - T0 <= 5.0 + DWELL + MARGIN, "alerted too late after the bag appeared"
    assert new.dwell_seconds >= DWELL and covers(new, where)
    assert new.details["found_against"] == "background"
    assert end.end_reason == "removed" and 29.0 <= end.ended_at - T0 <= 30.5


def test_bag_left_while_the_camera_was_offline_alerts_within_dwell_after_reconnect(clip, bag):
    # The stream drops at 6 s and comes back at 12 s; the bag was put down at 8 s, unseen.
    events = replay(clip, [place(bag, SMALL, 8.0, CLIP_SECONDS + 1)], offline=(6.0, 12.0))
    assert [e.event for e in events] == ["new"], events
    assert events[0].last_seen_at - T0 <= 12.0 + DWELL + MARGIN and covers(events[0], SMALL)


@pytest.fixture(scope="module")
def ops_monitor(clip) -> QualityMonitor:
    """A quality monitor after ops took the clean scene as its reference (`retina cameras reference`:
    the median of its latest samples), here of the clip's last seconds (no bag; a walker or two)."""
    monitor = QualityMonitor("cam-1", QualityConfig())
    for t, image in zip(clip.times, clip.images, strict=True):
        if t >= CLIP_SECONDS - 5 and round(t * 2) % 2 == 0:
            monitor.observe(image, T0 - 86_400 + t)
    monitor.capture_reference()
    return monitor


@pytest.fixture(scope="module")
def clean_reference(ops_monitor) -> ReferenceView:
    assert ops_monitor.reference is not None and ops_monitor.reference.view.confirmed
    return ops_monitor.reference.view


@pytest.mark.parametrize("where", [SMALL, LARGE], ids=["25x15", "40x30"])
def test_litter_already_there_at_start_is_found_against_the_reference(clip, bag, clean_reference, where):
    there = place(bag, where, 0.0, CLIP_SECONDS + 1)
    events = replay(clip, [there], clean_reference, until=30)
    assert [e.event for e in events] == ["new"], events
    assert events[0].details["found_against"] == "reference" and covers(events[0], where)
    assert events[0].last_seen_at - T0 <= 4.0 + DWELL + MARGIN
    # Without a confirmed reference it is part of the scene the camera first saw: nothing to tell.
    assert replay(clip, [there], until=30) == []
    unconfirmed = ReferenceView(clean_reference.image, clean_reference.captured_at, confirmed=False)
    assert replay(clip, [there], unconfirmed, until=30) == []


def brightness_ramp(start: float, end: float, change: float) -> Edit:
    def edit(t: float, image: np.ndarray, _: list[TrackedObject]) -> np.ndarray:
        factor = 1 + change * min(max((t - start) / (end - start), 0.0), 1.0)
        return np.clip(image * factor, 0, 255).astype(np.uint8)

    return edit


def shadow(image: np.ndarray, centre: tuple[int, int], axes: tuple[int, int], darkness: float) -> np.ndarray:
    """``image`` with a soft-edged ellipse darkened by ``darkness`` (the ground's texture stays)."""
    x1, y1 = max(centre[0] - axes[0] - 8, 0), max(centre[1] - axes[1] - 8, 0)
    x2, y2 = min(centre[0] + axes[0] + 8, image.shape[1]), min(centre[1] + axes[1] + 8, image.shape[0])
    if x2 <= x1 or y2 <= y1:
        return image
    mask = np.zeros((y2 - y1, x2 - x1), np.float32)
    cv2.ellipse(mask, (centre[0] - x1, centre[1] - y1), axes, 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (15, 15), 0)[..., None]
    image[y1:y2, x1:x2] = (image[y1:y2, x1:x2] * (1 - darkness * mask)).astype(np.uint8)
    return image


def walkers_shadows(t: float, image: np.ndarray, objects: list[TrackedObject]) -> np.ndarray:
    """A low sun: each person casts a shadow on the ground beside the feet, moving with them."""
    for obj in objects:
        if obj.family == "person":
            _, y1, x2, y2 = obj.bbox
            h = y2 - y1
            image = shadow(
                image, (round(x2 + 0.3 * h), round(y2)), (round(0.4 * h), round(0.06 * h) + 2), 0.5
            )
    return image


def cloud_shadow(t: float, image: np.ndarray, _: list[TrackedObject]) -> np.ndarray:
    """A shadow that falls on the pavement at 8 s and stays (an awning, a parked lorry out of view)."""
    return shadow(image, (400, 500), (60, 25), 0.4) if t >= 8 else image


def test_lighting_and_shadows_with_walkers_raise_nothing(clip, clean_reference):
    # -30 % over 5 s, walkers with moving shadows, a shadow that stays; with and without a reference.
    edits = [walkers_shadows, cloud_shadow, brightness_ramp(12.0, 17.0, -0.3)]
    assert replay(clip, edits) == []
    assert replay(clip, edits, clean_reference) == []


def test_the_worker_hands_the_cameras_reference_view_to_the_rule(clip, bag, ops_monitor):
    # The worker's camera pipeline (tracker, rules) with the camera's quality monitor, built (as on
    # AssignCamera) with the reference view the registry stored when ops took it.
    assert ops_monitor.reference is not None
    stored = reference_to_proto("cam-1", ops_monitor.reference, "worker-1")
    rule = {"name": "exposed_trash", "zones": [PAVEMENT], "params": {"dwell_seconds": DWELL}}
    camera = CameraConfig(id="cam-1", url="file:///shopfront.mp4", algorithms=[rule])
    pipeline = CameraPipeline(camera, TrackerConfig(), clip.detector)
    pipeline.quality = QualityMonitor("cam-1", QualityConfig(), reference_from_proto(stored))
    there = place(bag, SMALL, 0.0, CLIP_SECONDS + 1)
    events = []
    for t, image, objects, detections in zip(
        clip.times, clip.images, clip.objects, clip.detections, strict=True
    ):
        frame = SampledFrame("cam-1", T0 + t, there(t, image.copy(), objects))
        events += pipeline.analyse(frame, detections)[0]
    assert [e.event for e in events] == ["new"], events
    assert events[0].details["found_against"] == "reference" and covers(events[0], SMALL)


def test_a_config_that_still_sets_the_removed_warm_up_says_what_to_do():
    from retina.services.core.config import CameraDefaults, ConfigError, validate_camera

    camera = {
        "id": "park-1",
        "url": "rtsp://example/1",
        "algorithms": [
            {"name": "exposed_trash", "zones": [{"name": "lawn", "polygon": [[0, 0], [1, 0], [1, 1]]}],
             "params": {"warmup_seconds": 20}},
        ],
    }  # fmt: skip
    with pytest.raises(ConfigError) as error:
        validate_camera(camera, "cameras[0]", CameraDefaults())
    assert "cameras[0].algorithms[0].params" in str(error.value), str(error.value)
    assert "warmup_seconds was removed" in str(error.value) and "delete the line" in str(error.value)
