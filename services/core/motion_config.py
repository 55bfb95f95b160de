"""The ``motion`` section of the cluster configuration: the motion gate in front of the detector.

A camera's sampled frame goes to the detector only when its picture changed since the frame the
detector last saw (:class:`retina.services.worker.motion.MotionGate`), or when the floor rate is due;
otherwise the tracker and the rules run on that camera's last detections. A camera's own ``motion``
(any subset) is laid over the section by :func:`effective_motion`.

Kept apart from the gate so that loading a configuration never imports OpenCV.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from retina.algorithms.sdk import ConfigModel


class MotionConfig(ConfigModel):
    """When a sampled frame needs the detector. Scores are the share of the watched region's pixels
    whose grey level changed by more than ``pixel_delta`` since the frame the detector last saw."""

    enabled: bool = Field(default=True, description="Skip the detector on frames where nothing moved")
    threshold: float = Field(
        default=0.001,
        gt=0,
        lt=1,
        description="Share of the region's pixels that must change for the detector to run; lower catches"
        " smaller (farther) objects, higher skips more frames of noisy or windy scenes",
    )
    pixel_delta: int = Field(
        default=20, ge=1, le=254, description="Grey levels a pixel must change by to count as motion"
    )
    floor_fps: float = Field(
        default=0.5,
        gt=0,
        le=30,
        description="The detector runs at least this often on a still scene (re-checks what stands)",
    )
    region: Literal["frame", "zones"] = Field(
        default="frame",
        description="'frame': motion anywhere counts; 'zones': only motion in or next to the camera's"
        " rule zones (a kerb camera beside a busy road); objects elsewhere are then re-detected at the"
        " floor rate only",
    )
    width: int = Field(
        default=160,
        ge=32,
        le=1920,
        description="Width (pixels) the frame is shrunk to for the motion measure",
    )


class MotionOverride(ConfigModel):
    """A camera's ``motion``: any part of the ``motion`` section, for this camera only."""

    enabled: bool | None = None
    threshold: float | None = Field(default=None, gt=0, lt=1)
    pixel_delta: int | None = Field(default=None, ge=1, le=254)
    floor_fps: float | None = Field(default=None, gt=0, le=30)
    region: Literal["frame", "zones"] | None = None
    width: int | None = Field(default=None, ge=32, le=1920)


def effective_motion(section: MotionConfig, override: MotionOverride | None) -> MotionConfig:
    """The motion settings of a camera: ``section`` with the camera's ``override`` laid over it
    (every field of an override is validated with the same bounds when the camera is loaded)."""
    if override is None:
        return section
    return section.model_copy(update=override.model_dump(exclude_none=True))


def check_motion(motion: MotionConfig, lost_seconds: float) -> str | None:
    """Why a camera's motion settings do not fit its tracker, or None: a still scene must be
    re-detected before the tracker's lost time, or the track features of what stands there (fed by
    detected frames only) end and restart at each re-check."""
    if not motion.enabled or 1 / motion.floor_fps < lost_seconds:
        return None
    return (
        f"{motion.floor_fps:g} re-checks a still scene every {1 / motion.floor_fps:g} s; it must be more"
        f" often than tracker.lost_seconds ({lost_seconds:g} s) (the 'motion' section or the camera's)"
    )
