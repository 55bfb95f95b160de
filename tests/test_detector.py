"""One box per object within a family: the detector's per-class NMS lets a car also seen as a truck
through twice, which made two tracks and two incidents for one parked car."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from retina.services.core.config import DetectorConfig
from retina.services.worker.detector import Detections, Detector, family_index, family_nms
from tests.conftest import footage

NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 7: "truck"}


def same_family_overlaps(detections: Detections, families: np.ndarray, iou: float = 0.7) -> int:
    """Pairs of boxes of one family overlapping more than ``iou``."""
    if len(detections) < 2:
        return 0
    overlap = box_iou(torch.from_numpy(detections.xyxy), torch.from_numpy(detections.xyxy)).numpy()
    family = families[detections.cls]
    return int(np.triu((overlap > iou) & (family[:, None] == family[None, :]), 1).sum())


def test_a_car_also_seen_as_a_truck_is_one_box_and_other_families_stay():
    boxes = np.array(
        [[10, 10, 110, 60], [12, 11, 111, 62], [40, 5, 70, 60], [200, 10, 240, 60], [201, 11, 241, 61]],
        dtype=np.float32,
    )
    detections = Detections(boxes, np.array([0.3, 0.6, 0.9, 0.5, 0.4]), np.array([2, 7, 0, 1, 3]))
    families = family_index(NAMES)
    kept = family_nms(detections, families, 0.7)
    # The truck (0.6) beats the car (0.3); the person inside the car's box stays; the bicycle and
    # the motorcycle are one non-motor family, so the more confident bicycle stays.
    assert kept.cls.tolist() == [7, 0, 1]
    assert family_nms(detections, families, 1.0).cls.tolist() == [2, 7, 0, 1, 3]


@pytest.mark.slow
def test_real_footage_has_no_duplicate_boxes_within_a_family(model_path):
    with av.open(str(footage("parking_lot.mp4"))) as container:
        frames = [
            f.to_ndarray(format="bgr24") for i, f in enumerate(container.decode(video=0)) if i % 10 == 0
        ]
    raw = Detector(DetectorConfig(model=str(model_path), family_nms_iou=1.0))
    before = sum(same_family_overlaps(d, raw.family_index) for d in raw.detect(frames[:16]))
    assert before > 0, "the per-class NMS alone lets duplicates through on this clip"
    deduplicated = Detector(DetectorConfig(model=str(model_path)))  # the default: 0.7
    after = [same_family_overlaps(d, deduplicated.family_index) for d in deduplicated.detect(frames[:16])]
    assert sum(after) == 0
