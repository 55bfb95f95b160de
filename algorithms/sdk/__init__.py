"""retina's plug-in SDK: everything a rule needs, one concern per module.

Read them in this order:

- :mod:`~retina.algorithms.sdk.algorithm` — the contract: :class:`AlgorithmManifest` and the
  :class:`Algorithm` base class (``process``, ``finish``, ``zone_of``, ``relevant``, handover).
- :mod:`~retina.algorithms.sdk.frames` — what a rule consumes (:class:`AnalysedFrame`,
  :class:`TrackedObject`, :class:`ReferenceView`, :class:`CameraContext`) and emits (:class:`IncidentEvent`,
  :class:`Snapshot`).
- :mod:`~retina.algorithms.sdk.config` — parameter models (:class:`ConfigModel`), :class:`Zone`,
  :class:`ActiveHours`, :class:`AlgorithmSpec`, and how configuration errors read.
- :mod:`~retina.algorithms.sdk.geometry` — anchor point, box size, movement, IoU, polygons,
  :class:`StillnessTracker`.
- :mod:`~retina.algorithms.sdk.dwell` — :class:`DwellRule`: a rule of the form "a situation lasts
  ``dwell_seconds``" implements only ``observe``.
- :mod:`~retina.algorithms.sdk.lifecycle` — :class:`IncidentLifecycle`: new → update → end for
  rules that write ``process`` themselves.
- :mod:`~retina.algorithms.sdk.plugins` — discovery through the ``retina.algorithms`` entry-point
  group (one plug-in per name) and parameter validation.

Everything public is importable from this package too: ``from retina.algorithms.sdk import DwellRule``.
"""

from retina.algorithms.sdk.algorithm import Algorithm, AlgorithmManifest
from retina.algorithms.sdk.config import (
    DURATION_SUFFIX,
    MAX_DURATION_SECONDS,
    WEEKDAYS,
    ActiveHours,
    AlgorithmSpec,
    ConfigModel,
    Zone,
    error_location,
    error_message,
    parse_local_time,
    with_config_rules,
)
from retina.algorithms.sdk.dwell import DwellParams, DwellRule, Observation
from retina.algorithms.sdk.frames import (
    FAMILY_OF_CLASS,
    AnalysedFrame,
    CameraContext,
    EventKind,
    HandedOverIncident,
    IncidentEvent,
    ReferenceView,
    Snapshot,
    TrackedObject,
    family_of,
)
from retina.algorithms.sdk.geometry import (
    StillnessTracker,
    anchor_point,
    box_iou,
    box_size,
    has_moved,
    point_in_polygon,
    polygon_area,
    union_box,
)
from retina.algorithms.sdk.lifecycle import INCIDENT_NAMESPACE, IncidentLifecycle, ended_handover
from retina.algorithms.sdk.plugins import (
    ENTRY_POINT_GROUP,
    DuplicateAlgorithmError,
    available_algorithms,
    validate_algorithm_params,
)

__all__ = [
    "DURATION_SUFFIX",
    "ENTRY_POINT_GROUP",
    "FAMILY_OF_CLASS",
    "INCIDENT_NAMESPACE",
    "MAX_DURATION_SECONDS",
    "WEEKDAYS",
    "ActiveHours",
    "Algorithm",
    "AlgorithmManifest",
    "AlgorithmSpec",
    "AnalysedFrame",
    "CameraContext",
    "ConfigModel",
    "DuplicateAlgorithmError",
    "DwellParams",
    "DwellRule",
    "EventKind",
    "HandedOverIncident",
    "IncidentEvent",
    "IncidentLifecycle",
    "Observation",
    "ReferenceView",
    "Snapshot",
    "StillnessTracker",
    "TrackedObject",
    "Zone",
    "anchor_point",
    "available_algorithms",
    "box_iou",
    "box_size",
    "ended_handover",
    "error_location",
    "error_message",
    "family_of",
    "has_moved",
    "parse_local_time",
    "point_in_polygon",
    "polygon_area",
    "union_box",
    "validate_algorithm_params",
    "with_config_rules",
]
