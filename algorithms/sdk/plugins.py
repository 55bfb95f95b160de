"""Discovery: how retina finds installed rules, and checks a camera's settings for one.

A plug-in author registers a rule with an entry point in the group ``retina.algorithms`` naming an
:class:`~retina.algorithms.sdk.algorithm.Algorithm` subclass::

    [project.entry-points."retina.algorithms"]
    loitering_vehicle = "my_package:LoiteringVehicle"

:func:`available_algorithms` maps each installed rule's ``manifest.name`` to its class. A name
belongs to one plug-in: a second one registering it is a :class:`DuplicateAlgorithmError` naming
both, never a silent overwrite. :func:`validate_algorithm_params` checks a camera's
:class:`~retina.algorithms.sdk.config.AlgorithmSpec` against the rule's parameter model.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from pydantic import ValidationError

from retina.algorithms.sdk.algorithm import Algorithm
from retina.algorithms.sdk.config import AlgorithmSpec, error_location, error_message, with_config_rules

ENTRY_POINT_GROUP = "retina.algorithms"


class DuplicateAlgorithmError(ValueError):
    """Two installed plug-ins register the same algorithm name."""


def _origin(entry: EntryPoint) -> str:
    dist = entry.dist
    where = f"distribution {dist.name} {dist.version}" if dist is not None else "an unknown distribution"
    return f"{where} (entry point {entry.name} = {entry.value})"


@cache
def available_algorithms() -> dict[str, type[Algorithm]]:
    """Every installed algorithm plug-in, by name (entry-point group ``retina.algorithms``).

    Raises :class:`DuplicateAlgorithmError` when two plug-ins register one ``manifest.name``, and
    TypeError when an entry point does not name an :class:`Algorithm` subclass.
    """
    found: dict[str, tuple[type[Algorithm], EntryPoint]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
            raise TypeError(f"entry point {entry.name!r} ({entry.value}) is not an Algorithm subclass")
        name = cls.manifest.name
        if name in found and found[name][0] is not cls:  # the same class listed twice is one plug-in
            raise DuplicateAlgorithmError(
                f"two plug-ins register the algorithm name {name!r}: {_origin(found[name][1])} and "
                f"{_origin(entry)}; uninstall one, or give one's manifest another name"
            )
        found.setdefault(name, (cls, entry))
    return {name: cls for name, (cls, _) in found.items()}


def validate_algorithm_params(spec: AlgorithmSpec) -> list[str]:
    """Check a spec against its plug-in's manifest; return ``field: message`` lines (empty if valid)."""
    cls = available_algorithms()[spec.name]
    errors: list[str] = []
    try:
        with_config_rules(cls.manifest.params_model).model_validate(spec.params)
    except ValidationError as exc:
        for item in exc.errors():
            path = error_location(item["loc"])
            message = error_message(item)
            if item["type"] == "extra_forbidden":
                message = f"unknown parameter for {spec.name} (check the spelling)"
            errors.append(f"params.{path}: {message}")
    if cls.manifest.requires_zones and not spec.zones:
        errors.append(f"zones: {spec.name} needs at least one zone")
    return errors
