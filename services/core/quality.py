"""Video-quality diagnosis (视频质量诊断): the checks, their typed configuration and the event schema.

Every assigned camera is watched by a cheap monitor on sampled frames
(:class:`retina.services.worker.quality.QualityMonitor`). Each check turns a sample into a **score**
(higher is worse; units per check, see :data:`CHECKS`) and has **hysteresis**: a problem starts once
its score has stayed at or above ``enter`` for ``enter_seconds`` and ends once it has stayed at or
below ``leave`` for ``leave_seconds``, so a cloud passing the sun does not flap it.

This module holds what more than one service needs:

* :class:`QualityConfig` — the ``quality`` section of the cluster configuration (defaults for every
  camera) and :class:`QualityOverride`, a camera's own ``quality`` (any subset, merged over the
  section by :func:`effective_quality`, which validates the result);
* :class:`QualityEvent` — what the worker publishes on ``retina.cameras.<camera>.quality`` (schema
  ``retina.camera-quality/1``) when a camera's quality changes, and every 15 s;
* :data:`RULE_HOLD_NOTES` — the words ops see when a camera's rules are suspended or paused;
* the checks of what arrives over gRPC: a reference view (:func:`check_reference`) and a camera's
  quality in a heartbeat or health report (:func:`check_quality`).
"""

from __future__ import annotations

import typing
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from retina.algorithms.sdk import ConfigModel, error_location, error_message
from retina.services.core.errors import ConfigError
from retina.services.core.validation import InvalidArgument, check_number, check_text, check_timestamp, quote

QUALITY_SCHEMA_ID = "retina.camera-quality/1"

CheckName = Literal[
    "decode_errors",
    "frozen",
    "blur",
    "dark",
    "overexposed",
    "colour_cast",
    "noise",
    "occluded",
    "scene_change",
]
CHECKS: tuple[str, ...] = typing.get_args(CheckName)
"""The thresholded checks, in the order they are shown. Their scores (higher is worse):

* ``decode_errors`` — share of packets that failed to decode since the previous sample (0–1);
* ``frozen`` — seconds the picture has not changed while frames keep arriving;
* ``blur`` — blur of the picture (Crete et al.'s no-reference blur: 0 sharp, 1 flat);
* ``dark`` / ``overexposed`` — share of the picture that is black (grey < 40) / clipped white (≥ 245);
* ``colour_cast`` — distance of the picture's mean colour from neutral grey (CIE Lab units);
* ``noise`` — noise or interference strength in grey levels (snow: noise sigma; stripes: their amplitude);
* ``occluded`` — share of the picture that has suddenly turned uniform (lens covered or blocked);
* ``scene_change`` — share of the reference view's textured tiles no longer found at their place.
"""
NO_SIGNAL = "no_signal"  # not thresholded: the camera is offline or stalled (the decode thread says so)
PROBLEMS: tuple[str, ...] = (NO_SIGNAL, *CHECKS)
"""Every problem a camera can have: no signal, then the thresholded checks."""

RuleHold = Literal["", "paused", "suspended"]
RULE_HOLD_NOTES = {
    "scene_change": "moved: rules suspended",
    "occluded": "occluded: rules paused",
    "frozen": "frozen: rules paused",
}
"""What ops read on a camera whose rules are held, by the check that holds them."""


class QualityCheck(ConfigModel):
    """One check's thresholds. The problem starts when the score has stayed at or above ``enter`` for
    ``enter_seconds`` and ends when it has stayed at or below ``leave`` for ``leave_seconds``."""

    enabled: bool = Field(default=True, description="Whether the check runs on the camera")
    enter: float = Field(ge=0, description="Score at or above which the problem starts")
    leave: float = Field(ge=0, description="Score at or below which the problem ends (below enter)")
    enter_seconds: float = Field(ge=0, description="How long the score must stay at or above enter")
    leave_seconds: float = Field(ge=0, description="How long the score must stay at or below leave")

    @model_validator(mode="after")
    def _hysteresis(self) -> QualityCheck:
        if self.leave >= self.enter:
            raise ValueError(
                f"leave: {self.leave:g} must be below enter ({self.enter:g}), or the problem flaps"
            )
        return self


class FrozenCheck(QualityCheck):
    """The frozen-picture check; its score is the seconds the picture has stayed unchanged."""

    min_changed_share: float = Field(
        default=0.005,
        gt=0,
        lt=1,
        description="Share of the picture that must change (by 3 grey levels or more) between two "
        "samples for it to count as moving",
    )


def _check(enter: float, leave: float, enter_seconds: float, leave_seconds: float) -> Any:
    return Field(
        default_factory=lambda: QualityCheck(
            enter=enter, leave=leave, enter_seconds=enter_seconds, leave_seconds=leave_seconds
        )
    )


class QualityConfig(ConfigModel):
    """The ``quality`` section: the video-quality monitor of every camera (defaults; a camera's own
    ``quality`` overrides any part of it)."""

    enabled: bool = Field(default=True, description="Run the quality monitor on the cameras")
    sample_seconds: float = Field(
        default=1.0, gt=0, le=60, description="One sampled frame per this many seconds is diagnosed"
    )
    reference_settle_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A camera without a reference view takes its current view as the reference once "
        "the picture has had no problem for this long",
    )
    pause_rules_on: list[Literal["occluded", "frozen"]] = Field(
        default_factory=lambda: ["occluded"],
        description="Problems that pause the camera's rules while they last (a moved camera's rules "
        "are always suspended until ops confirm the new view)",
    )
    decode_errors: QualityCheck = _check(0.05, 0.01, 10, 30)
    frozen: FrozenCheck = Field(
        default_factory=lambda: FrozenCheck(enter=10, leave=0.5, enter_seconds=0, leave_seconds=3)
    )
    blur: QualityCheck = _check(0.42, 0.38, 10, 10)
    dark: QualityCheck = _check(0.75, 0.6, 20, 10)
    overexposed: QualityCheck = _check(0.35, 0.2, 20, 10)
    colour_cast: QualityCheck = _check(20, 16, 60, 30)
    noise: QualityCheck = _check(5, 3.5, 10, 10)
    occluded: QualityCheck = _check(0.3, 0.15, 2, 5)
    scene_change: QualityCheck = _check(0.3, 0.15, 5, 5)

    @model_validator(mode="before")
    @classmethod
    def _check_defaults(cls, data: Any) -> Any:
        """A check given in part keeps its defaults for the rest (``blur: {enter: 0.5}``)."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for name in CHECKS:
            given = data.get(name)
            if isinstance(given, dict):
                factory = cls.model_fields[name].default_factory
                filled[name] = {**factory().model_dump(), **given}  # type: ignore[misc]
        return filled

    def check(self, name: str) -> QualityCheck:
        """The settings of the check called ``name`` (one of :data:`CHECKS`)."""
        return getattr(self, name)


class QualityCheckOverride(ConfigModel):
    """A camera's own thresholds for one check: the fields it sets replace the section's."""

    enabled: bool | None = None
    enter: float | None = Field(default=None, ge=0)
    leave: float | None = Field(default=None, ge=0)
    enter_seconds: float | None = Field(default=None, ge=0)
    leave_seconds: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _hysteresis(self) -> QualityCheckOverride:
        if self.enter is not None and self.leave is not None and self.leave >= self.enter:
            raise ValueError(
                f"leave: {self.leave:g} must be below enter ({self.enter:g}), or the problem flaps"
            )
        return self


class FrozenCheckOverride(QualityCheckOverride):
    min_changed_share: float | None = Field(default=None, gt=0, lt=1)


class QualityOverride(ConfigModel):
    """A camera's ``quality``: any part of the ``quality`` section, for this camera only."""

    enabled: bool | None = None
    sample_seconds: float | None = Field(default=None, gt=0, le=60)
    reference_settle_seconds: float | None = Field(default=None, ge=0)
    pause_rules_on: list[Literal["occluded", "frozen"]] | None = None
    decode_errors: QualityCheckOverride | None = None
    frozen: FrozenCheckOverride | None = None
    blur: QualityCheckOverride | None = None
    dark: QualityCheckOverride | None = None
    overexposed: QualityCheckOverride | None = None
    colour_cast: QualityCheckOverride | None = None
    noise: QualityCheckOverride | None = None
    occluded: QualityCheckOverride | None = None
    scene_change: QualityCheckOverride | None = None


def effective_quality(
    section: QualityConfig, override: QualityOverride | None, prefix: str = "quality"
) -> QualityConfig:
    """The quality settings of a camera: ``section`` with the camera's ``override`` laid over it.

    Raises ConfigError naming ``prefix.<field>`` when the merged settings do not hold together
    (a camera raising ``enter`` above the section's ``leave``, say, is fine; lowering it below is not).
    """
    if override is None:
        return section
    merged = section.model_dump()
    for key, value in override.model_dump(exclude_none=True).items():
        if isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    try:
        return QualityConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            [f"{error_location(item['loc'], prefix)}: {error_message(item)}" for item in exc.errors()]
        ) from None


def view_of(camera: Any) -> tuple[str, list[tuple[str, str, list[tuple[float, float]]]]]:
    """What a camera's reference view stands for: its stream and the zones drawn on it. A camera
    configuration (``CameraConfig``) whose view changed (another URL, zones re-drawn) needs a new
    reference view: the registry drops the old one and the worker takes the current view."""
    zones = [(spec.name, zone.name, list(zone.polygon)) for spec in camera.algorithms for zone in spec.zones]
    return camera.url, zones


def same_view(a: Any, b: Any) -> bool:
    """Whether two configurations of a camera look at the same view (see :func:`view_of`)."""
    return view_of(a) == view_of(b)


# ---------------------------------------------------------------------------------------------
# The event on NATS
# ---------------------------------------------------------------------------------------------


class CheckState(BaseModel):
    """One check of a camera as of the latest sample."""

    score: float = Field(description="Latest score (higher is worse); units per check")
    enter: float = Field(description="The problem starts at or above this score (after enter_seconds)")
    leave: float = Field(description="The problem ends at or below this score (after leave_seconds)")
    problem: bool = Field(description="Whether the problem is active")
    since: datetime | None = Field(default=None, description="When the problem started (while active)")


class QualityEvent(BaseModel):
    """A camera's video quality, published on ``retina.cameras.<camera_id>.quality`` when a problem
    starts or ends, when its rules are held or released, when a reference view is taken, and every
    15 s (so a late subscriber learns the state)."""

    model_config = ConfigDict(populate_by_name=True)

    schema_id: Literal["retina.camera-quality/1"] = Field(default=QUALITY_SCHEMA_ID, alias="schema")
    camera_id: str
    worker_id: str
    at: datetime = Field(description="The sample the state is of")
    problems: list[str] = Field(description="Active problems: no_signal and the checks' names")
    raised: list[str] = Field(default_factory=list, description="Problems that started with this event")
    cleared: list[str] = Field(default_factory=list, description="Problems that ended with this event")
    rules: RuleHold = Field(
        default="",
        description="'suspended' (the camera moved: its zones no longer fit), 'paused' (occluded or "
        "frozen), '' (rules run)",
    )
    note: str = Field(default="", description="For people: 'moved: rules suspended', ...")
    reference_at: datetime | None = Field(
        default=None, description="When the reference view was taken; null: none yet"
    )
    checks: dict[str, CheckState] = Field(default_factory=dict, description="Every enabled check")

    @property
    def subject(self) -> str:
        return quality_subject(self.camera_id)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def quality_subject(camera_id: str) -> str:
    """The NATS subject of a camera's quality events."""
    return f"retina.cameras.{camera_id}.quality"


# ---------------------------------------------------------------------------------------------
# What arrives over gRPC: reference views and quality reports
# ---------------------------------------------------------------------------------------------

REFERENCE_SOURCES = ("auto", "confirmed")
MAX_REFERENCE_BYTES = 2 * 1024 * 1024
MAX_REFERENCE_SIDE = 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_NOTE_LENGTH = 256
RULE_HOLDS: tuple[str, ...] = typing.get_args(RuleHold)


def decode_reference_image(data: bytes) -> np.ndarray:
    """The grey picture of a reference view's PNG; ValueError saying what is wrong with it."""
    import cv2  # here, so that loading the configuration does not load OpenCV

    if len(data) > MAX_REFERENCE_BYTES:
        raise ValueError(f"at most {MAX_REFERENCE_BYTES} bytes (got {len(data)})")
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG image")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError("the PNG image does not decode")
    if max(image.shape) > MAX_REFERENCE_SIDE or min(image.shape) < 8:
        raise ValueError(f"{image.shape[1]}x{image.shape[0]} px: use 8 to {MAX_REFERENCE_SIDE} px a side")
    return image


def check_reference(message: Any, field: str = "reference") -> tuple[np.ndarray, float]:
    """A ``retina.v1.QualityReference``'s picture and time (epoch seconds), or InvalidArgument
    naming ``field`` and the bad part."""
    if message.source not in REFERENCE_SOURCES:
        raise InvalidArgument(
            f"{field}.source", f"use {' or '.join(REFERENCE_SOURCES)} (got {quote(message.source)})"
        )
    captured_at = check_timestamp(message.captured_at, f"{field}.captured_at")
    try:
        image = decode_reference_image(message.image)
    except ValueError as exc:
        raise InvalidArgument(f"{field}.image", str(exc)) from None
    return image, captured_at


def check_quality(message: Any, field: str = "quality") -> None:
    """InvalidArgument naming the bad part of a ``retina.v1.CameraQuality`` (names known, scores
    finite, texts short, times valid)."""
    if len(message.checks) > len(CHECKS):
        raise InvalidArgument(f"{field}.checks", f"at most {len(CHECKS)} (got {len(message.checks)})")
    for index, check in enumerate(message.checks):
        where = f"{field}.checks[{index}]"
        if check.name not in CHECKS:
            raise InvalidArgument(f"{where}.name", f"not a quality check (got {quote(check.name)})")
        for name in ("score", "enter", "leave"):
            check_number(getattr(check, name), f"{where}.{name}")
        if check.HasField("since"):
            check_timestamp(check.since, f"{where}.since")
    if len(message.problems) > len(PROBLEMS):
        raise InvalidArgument(f"{field}.problems", f"at most {len(PROBLEMS)} (got {len(message.problems)})")
    for index, problem in enumerate(message.problems):
        if problem not in PROBLEMS:
            raise InvalidArgument(
                f"{field}.problems[{index}]", f"not a quality problem (got {quote(problem)})"
            )
    if message.rules not in RULE_HOLDS:
        raise InvalidArgument(f"{field}.rules", f"use suspended, paused or '' (got {quote(message.rules)})")
    check_text(message.note, f"{field}.note", max_length=MAX_NOTE_LENGTH)
    for name in ("reference_at", "sampled_at"):
        if message.HasField(name):
            check_timestamp(getattr(message, name), f"{field}.{name}")
