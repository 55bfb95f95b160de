"""The ``plates`` section of the cluster configuration: where the plate models are, and thresholds.

Kept apart from :mod:`retina.services.core.plates` so that loading a configuration never imports
ONNX Runtime or OpenCV. Every field is optional: without ``detector_model`` plate features are off,
and whatever asks for them is told so (:class:`retina.services.core.plates.PlatesUnavailable`).
"""

from __future__ import annotations

from pydantic import Field

from retina.algorithms.sdk import ConfigModel


class PlatesConfig(ConfigModel):
    """Licence-plate detection (y5fu, 4 corners) and reading (CRNN with plate colour).

    The reader model is GPL-3.0: keep its licence file beside it wherever it is shipped.
    """

    detector_model: str | None = Field(
        default=None, description="y5fu plate detector (.onnx, 320 or 640 input); none: plates off"
    )
    reader_model: str | None = Field(
        default=None, description="CRNN plate reader with colour head (.onnx); none: detect only"
    )
    min_width: int = Field(
        default=30, ge=1, le=4096, description="plates narrower than this (pixels) are not read"
    )
    detection_threshold: float = Field(
        default=0.5, gt=0, lt=1, description="objectness × class score below this is no plate"
    )
    nms_iou: float = Field(default=0.5, gt=0, le=1, description="overlapping detections above this IoU merge")
    read_threshold: float = Field(
        default=0.6, ge=0, lt=1, description="readings whose least sure character is below this are dropped"
    )

    max_reads_per_track: int = Field(
        default=4,
        ge=1,
        le=100,
        description="worker: plate reads per vehicle track at most (each costs one detector + reader call)",
    )
    max_reads_per_frame: int = Field(
        default=4,
        ge=1,
        le=100,
        description="worker: plate reads per camera frame at most (others wait for a later frame)",
    )
    min_vehicle_width: int = Field(
        default=80,
        ge=1,
        le=8192,
        description="worker: vehicles narrower than this (full-resolution pixels) are not read",
    )
    reread_factor: float = Field(
        default=1.15,
        ge=1,
        le=10,
        description="worker: a track is read again when its crop is this much better than the last one read",
    )
    reread_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="worker: ... or this long after the last read, on a crop about as good as the best read",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.detector_model)
