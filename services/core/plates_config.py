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

    @property
    def enabled(self) -> bool:
        return bool(self.detector_model)
