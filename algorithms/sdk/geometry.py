"""Geometry: pure functions on points, polygons and pixel boxes ``(x1, y1, x2, y2)``.

A plug-in author finds here where an object stands (:func:`anchor_point`, the bottom-centre of its
box — the one anchor every rule uses for "in a zone" and "standing still"), how big it is
(:func:`box_size`), whether it has moved (:func:`has_moved`), box overlap (:func:`box_iou`) and
union (:func:`union_box`), polygon tests (:func:`point_in_polygon`, :func:`polygon_area`), and
:class:`StillnessTracker`, which times how long each track has stood still.
"""

from __future__ import annotations

import math


def polygon_area(points: list[tuple[float, float]]) -> float:
    """Absolute area of a simple polygon (shoelace formula)."""
    area = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        area += x1 * y2 - x2 * y1
    return abs(area) / 2


def point_in_polygon(x: float, y: float, points: list[tuple[float, float]]) -> bool:
    """Ray-casting point-in-polygon test."""
    inside = False
    n = len(points)
    for i in range(n):
        x1, y1 = points[i]
        x2, y2 = points[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross_x:
                inside = not inside
    return inside


def anchor_point(bbox: tuple[float, float, float, float]) -> tuple[float, float]:
    """Where an object stands: the bottom-centre of its box (pixels)."""
    return ((bbox[0] + bbox[2]) / 2, bbox[3])


def box_size(bbox: tuple[float, float, float, float]) -> float:
    """A box's linear size, sqrt(area), in pixels."""
    return math.sqrt(max(bbox[2] - bbox[0], 1.0) * max(bbox[3] - bbox[1], 1.0))


def has_moved(
    bbox: tuple[float, float, float, float],
    anchor: tuple[float, float],
    size: float,
    max_movement_ratio: float,
) -> bool:
    """Whether a box's anchor is more than ``max_movement_ratio`` of ``size`` away from ``anchor``
    (where the object stood, and its :func:`box_size` there): the test of "standing still"."""
    x, y = anchor_point(bbox)
    return math.hypot(x - anchor[0], y - anchor[1]) > max_movement_ratio * size


def union_box(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    """The smallest box holding every box."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


class StillnessTracker:
    """How long each track has stood still: its anchor within ``max_movement_ratio`` of its size.

    ``update`` returns the moment the current still period began; a larger move restarts it.
    Tracks unseen for ``forget_seconds`` are forgotten.
    """

    def __init__(self, max_movement_ratio: float, forget_seconds: float):
        self.max_movement_ratio = max_movement_ratio
        self.forget_seconds = forget_seconds
        self._still: dict[
            int, tuple[tuple[float, float], float, float, float]
        ] = {}  # anchor, size, since, seen

    def update(self, track_id: int, bbox: tuple[float, float, float, float], now: float) -> float:
        entry = self._still.get(track_id)
        if entry is not None:
            anchor, size, since, _ = entry
            if not has_moved(bbox, anchor, size, self.max_movement_ratio):
                self._still[track_id] = (anchor, size, since, now)
                return since
        self._still[track_id] = (anchor_point(bbox), box_size(bbox), now, now)
        return now

    def forget_stale(self, now: float) -> None:
        for track_id, (_, _, _, seen) in list(self._still.items()):
            if now - seen > self.forget_seconds:
                del self._still[track_id]


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
