"""Is a standing vehicle still there? Box cover and a cheap appearance test for illegal_parking.

While the tracker has no box for a parked vehicle (detector misses, occlusion), :func:`box_coverage`
says how much of its box another object hides, and :func:`appearance_patch` /
:func:`appearance_similarity` compare what its box shows now with what it showed at its last still
sighting: robust to lighting (gain and offset), cheap (a 32×32 grey patch per unseen stay and frame).
Candidates for the SDK's ``geometry`` once other rules need them (they would be re-exported there).
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def box_coverage(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """The fraction of box ``a``'s area that box ``b`` covers (0..1): how much of ``a`` ``b`` hides."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return ix * iy / area if area > 0 else 0.0


APPEARANCE_PATCH_SIZE = 32  # pixels per side of an appearance patch
_FLAT_PATCH_STD = 2.0  # grey levels: a patch with less contrast than this shows no structure


def appearance_patch(image: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray | None:
    """What a box shows, for :func:`appearance_similarity`: the box region of a BGR (or grey) image in
    grey, resized to ``APPEARANCE_PATCH_SIZE`` square, as float32. None if the box holds no pixels."""
    height, width = image.shape[:2]
    x1, y1 = max(math.floor(bbox[0]), 0), max(math.floor(bbox[1]), 0)
    x2, y2 = min(math.ceil(bbox[2]), width), min(math.ceil(bbox[3]), height)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    region = image[y1:y2, x1:x2]
    if region.ndim == 3:
        region = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    size = (APPEARANCE_PATCH_SIZE, APPEARANCE_PATCH_SIZE)
    return cv2.resize(region, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def appearance_similarity(reference: np.ndarray, current: np.ndarray) -> float | None:
    """How alike two patches of :func:`appearance_patch` are: normalised cross-correlation, -1..1 (1: the
    same picture, whatever the brightness and contrast; about 0: unrelated, e.g. a car and the empty
    road where it stood). None when ``reference`` is featureless (nothing to recognise); a
    featureless ``current`` against a structured reference is 0 (what was there has gone)."""
    ref = reference - reference.mean()
    ref_norm = float(np.linalg.norm(ref))
    if ref_norm < _FLAT_PATCH_STD * math.sqrt(ref.size):
        return None
    cur = current - current.mean()
    cur_norm = float(np.linalg.norm(cur))
    if cur_norm < _FLAT_PATCH_STD * math.sqrt(cur.size):
        return 0.0
    return float((ref * cur).sum() / (ref_norm * cur_norm))
