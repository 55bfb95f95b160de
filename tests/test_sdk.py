"""The plug-in SDK: one module per concern, one plug-in per name, the old import path still works."""

from __future__ import annotations

import ast
import importlib
import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

import retina.algorithms.base as old_base
import retina.algorithms.sdk as sdk
from retina.algorithms.illegal_parking import IllegalParking
from retina.algorithms.sdk import (
    Algorithm,
    AlgorithmManifest,
    AlgorithmSpec,
    AnalysedFrame,
    CameraContext,
    DuplicateAlgorithmError,
    DwellRule,
    StillnessTracker,
    TrackedObject,
    Zone,
    available_algorithms,
    has_moved,
)
from tests.conftest import REPO

SDK_DIR = REPO / "algorithms" / "sdk"
# Every public name algorithms/base.py defined before the split: a plug-in may import any of them.
OLD_PUBLIC_NAMES = {
    "DURATION_SUFFIX", "ENTRY_POINT_GROUP", "INCIDENT_NAMESPACE", "MAX_DURATION_SECONDS", "WEEKDAYS",
    "ActiveHours", "Algorithm", "AlgorithmManifest", "AlgorithmSpec", "AnalysedFrame", "CameraContext",
    "ConfigModel", "DwellParams", "DwellRule", "EventKind", "HandedOverIncident", "IncidentEvent",
    "IncidentLifecycle", "Observation", "Snapshot", "StillnessTracker", "TrackedObject", "Zone",
    "anchor_point", "available_algorithms", "box_iou", "box_size", "ended_handover", "error_location",
    "error_message", "parse_local_time", "point_in_polygon", "polygon_area", "union_box",
    "validate_algorithm_params", "with_config_rules",
}  # fmt: skip


# -- the old import path -----------------------------------------------------------------------


def test_old_import_path_exposes_the_same_objects():
    assert set(old_base.__all__) == OLD_PUBLIC_NAMES
    for name in OLD_PUBLIC_NAMES:
        assert getattr(old_base, name) is getattr(sdk, name), name


def test_old_import_path_is_a_thin_re_export():
    tree = ast.parse((REPO / "algorithms" / "base.py").read_text())
    defined = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)]
    assert not defined, "base.py only re-exports; code lives in retina.algorithms.sdk"
    assert "retina.algorithms.sdk" in (ast.get_docstring(tree) or "")


def test_a_rule_written_against_the_old_path_is_an_sdk_rule():
    class OldStyle(old_base.DwellRule):
        manifest = old_base.AlgorithmManifest("old_style", "1", old_base.DwellParams, frozenset(), "x")

        def observe(self, frame):
            return {}

    assert issubclass(OldStyle, sdk.Algorithm) and issubclass(OldStyle, DwellRule)


# -- one module per concern ----------------------------------------------------------------------


def test_every_sdk_module_is_small_and_says_what_it_holds():
    modules = sorted(SDK_DIR.glob("*.py"))
    concerns = {"config", "geometry", "frames", "algorithm", "lifecycle", "plugins", "dwell"}
    assert concerns <= {p.stem for p in modules}
    for path in modules:
        assert len(path.read_text().splitlines()) < 500, path.name
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} needs a module docstring"


def test_the_package_re_exports_every_module_s_public_names():
    for path in SDK_DIR.glob("*.py"):
        if path.stem == "__init__":
            continue
        module = importlib.import_module(f"retina.algorithms.sdk.{path.stem}")
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", module.__name__) != module.__name__:
                continue
            if isinstance(value, type) or callable(value):
                assert getattr(sdk, name, None) is value, f"sdk/__init__.py should re-export {name}"


# -- one way to do each thing ----------------------------------------------------------------------

W, H = 640, 480
FRAME = AnalysedFrame("cam-1", 0.0, np.zeros((H, W, 3), dtype=np.uint8), [])
FAR = Zone(name="far", polygon=[(0, 0), (1, 0), (1, 0.5), (0, 0.5)])
NEAR = Zone(name="near", polygon=[(0, 0.5), (1, 0.5), (1, 1), (0, 1)])


class _NoFilters(BaseModel):
    pass


class _Plain(Algorithm):
    manifest = AlgorithmManifest("plain", "1", _NoFilters, frozenset(), "test rule")

    def process(self, frame):
        return []

    def finish(self, timestamp, reason):
        return []


def _car(bbox) -> TrackedObject:
    return TrackedObject(1, "vehicle", "car", 0.9, bbox)


def test_zone_lookup_and_relevance_filter_live_on_the_algorithm_base():
    for rule in (IllegalParking, DwellRule):
        assert rule.zone_of is Algorithm.zone_of and rule.relevant is Algorithm.relevant, rule
    plain = _Plain(CameraContext("cam-1", ZoneInfo("UTC")), [FAR, NEAR], _NoFilters(), None)
    # The anchor is the bottom-centre: this box lies mostly in the far zone but stands in the near one.
    assert plain.zone_of(FRAME, (100, 50, 200, 260)).name == "near"
    assert plain.zone_of(FRAME, (100, 50, 200, 230)).name == "far"
    assert plain.relevant(FRAME, _car((0, 0, 1, 1)))  # no filter parameters: every object counts


def test_relevance_filter_reads_the_rule_s_parameters():
    camera = CameraContext("cam-1", ZoneInfo("UTC"))
    params = IllegalParking.manifest.params_model(min_box_area_ratio=0.01)
    parking = IllegalParking(camera, [NEAR], params, None)
    assert not parking.relevant(FRAME, _car((0, 0, 50, 61)))  # 3050 px², under 1% of 640x480
    assert parking.relevant(FRAME, _car((0, 0, 64, 48)))  # 3072 px²: exactly the limit
    spec = AlgorithmSpec(name="crowd_gathering", zones=[NEAR], params={"max_box_aspect_ratio": 3})
    crowd = available_algorithms()["crowd_gathering"].from_spec(camera, spec)
    assert crowd.relevant(FRAME, _car((0, 0, 30, 90)))
    assert not crowd.relevant(FRAME, _car((0, 0, 30, 91)))  # more elongated than 3:1


def test_movement_is_measured_one_way():
    anchor, size = (100.0, 200.0), 50.0  # a still object's anchor and size
    assert not has_moved((80, 150, 120, 200), anchor, size, 0.3)
    assert not has_moved((95, 150, 135, 200), anchor, size, 0.3)  # 15 px: exactly the allowance
    assert has_moved((96, 150, 136, 200), anchor, size, 0.3)
    tracker = StillnessTracker(max_movement_ratio=0.3, forget_seconds=10)
    assert tracker.update(1, (75, 150, 125, 200), now=0.0) == 0.0  # anchor (100, 200), size 50
    assert tracker.update(1, (90, 150, 140, 200), now=1.0) == 0.0  # within the allowance: still
    assert tracker.update(1, (120, 150, 170, 200), now=2.0) == 2.0  # moved: a new still period


# -- one plug-in per name ----------------------------------------------------------------------------

_unique = itertools.count()


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install fake distributions (a dist-info folder and a module each) on sys.path."""
    monkeypatch.syspath_prepend(str(tmp_path))
    available_algorithms.cache_clear()

    def _install(distribution: str, rules: dict[str, str]) -> str:
        """``rules``: entry-point name → manifest name; one class (``RuleN``) per manifest name.
        Returns the module's name."""
        module = f"{distribution.replace('-', '_')}_{next(_unique)}"
        classes = {manifest_name: f"Rule{i}" for i, manifest_name in enumerate(dict.fromkeys(rules.values()))}
        source = [
            "from pydantic import BaseModel",
            "from retina.algorithms.sdk import Algorithm, AlgorithmManifest",
        ]
        for manifest_name, cls in classes.items():
            source += [
                f"class {cls}(Algorithm):",
                f"    manifest = AlgorithmManifest({manifest_name!r}, '1.0', BaseModel, frozenset(), 'fake')",
                "    def process(self, frame): return []",
                "    def finish(self, timestamp, reason): return []",
            ]
        (tmp_path / f"{module}.py").write_text("\n".join(source) + "\n")
        info = tmp_path / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
        points = [f"{name} = {module}:{classes[manifest_name]}" for name, manifest_name in rules.items()]
        (info / "entry_points.txt").write_text("[retina.algorithms]\n" + "\n".join(points) + "\n")
        importlib.invalidate_caches()
        return module

    yield _install
    available_algorithms.cache_clear()


def test_a_second_plugin_registering_a_name_is_an_error_naming_both(install):
    first = install("county-rules", {"dumping": "dumping"})
    second = install("city-rules", {"dumping": "dumping"})
    with pytest.raises(DuplicateAlgorithmError) as caught:
        available_algorithms()
    message = str(caught.value)
    assert "'dumping'" in message
    for distribution, module in (("county-rules", first), ("city-rules", second)):
        assert distribution in message and f"{module}:Rule0" in message, message


def test_a_plugin_cannot_take_over_a_built_in_rule(install):
    module = install("parking-plus", {"parking_plus": "illegal_parking"})
    with pytest.raises(DuplicateAlgorithmError) as caught:
        available_algorithms()
    message = str(caught.value)
    assert "retina " in message and "retina.algorithms.illegal_parking:IllegalParking" in message
    assert "parking-plus" in message and f"{module}:Rule0" in message
    # Configuration names the problem instead of running either rule.
    with pytest.raises(ValidationError, match="two plug-ins register the algorithm name 'illegal_parking'"):
        AlgorithmSpec(name="illegal_parking", zones=[NEAR])


def test_distinct_names_from_several_plugins_are_all_found(install):
    install("county-rules", {"dumping": "dumping"})
    # Two entry points naming one class are one plug-in, not a conflict.
    city = install("city-rules", {"graffiti": "graffiti", "graffiti_alias": "graffiti", "posters": "posters"})
    found = available_algorithms()
    assert {"dumping", "graffiti", "posters", "illegal_parking"} <= set(found)
    assert found["graffiti"].__module__ == city and found["graffiti"].__name__ == "Rule0"
