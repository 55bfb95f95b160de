"""Configuration: the typed models a rule's settings are written in, and how their errors read.

A plug-in author finds here :class:`ConfigModel` (the base of every parameter model: unknown keys
are errors, numbers are finite, ``*_seconds`` durations are at most 7 days), :class:`Zone` (a named
polygon in normalised image coordinates), :class:`ActiveHours` (when a rule may raise incidents)
and :class:`AlgorithmSpec` (one rule enabled on a camera: name, zones, params, active hours).
:func:`error_location` and :func:`error_message` turn pydantic errors into the admin-facing
``path: message`` lines every part of retina prints.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails

from retina.algorithms.sdk.geometry import point_in_polygon, polygon_area

# ---------------------------------------------------------------------------------------------
# The rules every configuration model follows
# ---------------------------------------------------------------------------------------------

MAX_DURATION_SECONDS = 7 * 24 * 3600
DURATION_SUFFIX = "_seconds"


class ConfigModel(BaseModel):
    """Base of every configuration model: the cluster's sections and the plug-ins' parameters.

    One rule set for all of them: unknown keys are errors; every number must be finite (NaN and
    infinity are refused, also as the strings "nan" and "inf"); every duration — a field named
    ``*_seconds`` — is at most :data:`MAX_DURATION_SECONDS` (7 days), whatever its own bounds.
    Plug-in parameter models that do not derive from it get the same rules when validated
    (:func:`validate_algorithm_params`).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _bounded_duration(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if name.endswith(DURATION_SUFFIX) and isinstance(value, int | float) and value > MAX_DURATION_SECONDS:
            raise ValueError(f"must be at most {MAX_DURATION_SECONDS} s (7 days), got {value:g}")
        return value


def error_location(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``prefix.zones[0].polygon`` for a pydantic error location. Keys that are not short identifiers
    (an unknown key can be anything) are shown as a short, truncated repr."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith("function-"):  # a validator's name, not a field
            name = part if part.isidentifier() and len(part) <= 64 else _short_repr(part)
            path += f".{name}" if path else name
    return path


def _short_repr(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def error_message(item: ErrorDetails) -> str:
    """The admin-facing message of one pydantic error (never the whole bad value)."""
    if item["type"] == "finite_number":
        return "must be a finite number (not NaN or infinity)"
    message = item["msg"]
    for noise in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(noise)
    return message


@cache
def with_config_rules(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` itself if it is a :class:`ConfigModel`, else a subclass of it that follows the rules."""
    if issubclass(model, ConfigModel):
        return model
    # The plug-in's own settings (say extra="allow") win, except that numbers stay finite.
    config = {**ConfigModel.model_config, **model.model_config, "allow_inf_nan": False}
    namespace = {"__module__": model.__module__, "model_config": config}
    return type(model.__name__, (model, ConfigModel), namespace)


# ---------------------------------------------------------------------------------------------
# Configuration pieces shared by every algorithm
# ---------------------------------------------------------------------------------------------


def parse_local_time(value: str) -> time:
    """Parse "HH:MM" into a time; raises ValueError with an actionable message."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{value!r} is not a time of day; use HH:MM, e.g. 07:00")
    return time(int(match[1]), int(match[2]))


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ActiveHours(ConfigModel):
    """Local hours (and optionally weekdays) in which a rule raises new incidents.

    ``end`` before ``start`` wraps past midnight; ``start == end`` means all day. ``days`` limits
    the rule to those weekdays (of the day the period starts on).
    """

    start: str = Field(max_length=8)
    end: str = Field(max_length=8)
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        parse_local_time(value)
        return value

    def contains(self, moment: datetime) -> bool:
        """Whether a timezone-aware moment falls inside the hours (in the moment's own timezone)."""
        start, end, now = parse_local_time(self.start), parse_local_time(self.end), moment.time()
        weekday = moment.weekday()
        if start == end:
            inside = True
        elif start < end:
            inside = start <= now < end
        else:
            inside = now >= start or now < end
            if now < end:  # the small hours belong to the period that began the evening before
                weekday = (weekday - 1) % 7
        return inside and (self.days is None or WEEKDAYS[weekday] in self.days)


class Zone(ConfigModel):
    """A named polygon in normalised image coordinates (0..1, origin top-left)."""

    name: str = Field(min_length=1, max_length=64)
    polygon: list[tuple[float, float]] = Field(max_length=1000, description="At most 1000 points")

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        if not name.isprintable():
            raise ValueError("must be printable text on one line (it is shown to dispatchers)")
        return name

    @field_validator("polygon", mode="before")
    @classmethod
    def _points(cls, value: Any) -> Any:
        # Accept [[x, y], ...] (YAML) and [{x:, y:}, ...] (gRPC, which omits zero coordinates).
        if isinstance(value, list):
            return [(p.get("x", 0.0), p.get("y", 0.0)) if isinstance(p, dict) else p for p in value]
        return value

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(points) < 3:
            raise ValueError("needs at least 3 points")
        for i, (x, y) in enumerate(points):
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise ValueError(
                    f"point {i} ({x}, {y}) is outside the image; use normalised coordinates from 0 to 1"
                )
        if polygon_area(points) < 1e-6:
            raise ValueError("has no area (are the points on one line?)")
        return points

    def contains(self, x: float, y: float) -> bool:
        """Whether the normalised point lies inside the polygon (ray casting)."""
        return point_in_polygon(x, y, self.polygon)


class AlgorithmSpec(ConfigModel):
    """One algorithm enabled on a camera, as written in the configuration."""

    name: str = Field(max_length=64)
    zones: list[Zone] = Field(default_factory=list, max_length=100, description="At most 100 zones")
    params: dict[str, Any] = Field(default_factory=dict)
    active_hours: ActiveHours | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from retina.algorithms.sdk.plugins import available_algorithms  # plugins imports this module

        known = available_algorithms()
        if name not in known:
            raise ValueError(f"unknown algorithm {name!r} (installed: {', '.join(sorted(known)) or 'none'})")
        return name

    @field_validator("active_hours", mode="before")
    @classmethod
    def _empty_hours(cls, value: Any) -> Any:
        # An unset ActiveHours arrives from the gRPC Camera message as {} or {start: "", end: ""}.
        if isinstance(value, dict) and not any(value.values()):
            return None
        return value

    @model_validator(mode="after")
    def _unique_zones(self) -> AlgorithmSpec:
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ValueError("zone names must be unique within an algorithm")
        return self
