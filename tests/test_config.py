"""Configuration is validated at load; errors name the camera and the field; bad cameras are skipped."""

from pathlib import Path

import pytest

from retina.services.core.config import ConfigError, load_config, parse_config

GOOD_ZONE = {"name": "curb", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}


def camera(**overrides):
    base = {
        "id": "cam-001",
        "name": "Main St / 5th Ave",
        "url": "rtsp://127.0.0.1:8554/cam1",
        "department": "urban-management",
        "location": {"lat": 29.97, "lon": 113.94},
        "timezone": "Asia/Shanghai",
        "analysis_fps": 2,
        "algorithms": [{"name": "illegal_parking", "zones": [GOOD_ZONE], "params": {"dwell_seconds": 60}}],
    }
    base.update(overrides)
    return base


def errors_for(cam: dict) -> list[str]:
    return parse_config({"cameras": [cam]}).camera_errors


def test_issue_example_config_is_valid():
    loaded = parse_config({"cameras": [camera()]})
    assert loaded.camera_errors == []
    cam = loaded.config.cameras[0]
    assert cam.algorithms[0].params == {"dwell_seconds": 60}
    assert cam.location.lat == pytest.approx(29.97)


def test_two_point_polygon_names_camera_and_field():
    bad = camera(
        algorithms=[{"name": "illegal_parking", "zones": [{"name": "z", "polygon": [[0, 0], [1, 1]]}]}]
    )
    assert errors_for(bad) == ["cameras[0].algorithms[0].zones[0].polygon: needs at least 3 points"]


def test_unknown_algorithm_lists_installed_ones():
    (error,) = errors_for(camera(algorithms=[{"name": "illegal_parkin"}]))
    assert error.startswith("cameras[0].algorithms[0].name: unknown algorithm 'illegal_parkin'")
    assert "illegal_parking" in error


def test_zone_outside_image_is_explained():
    zone = {"name": "z", "polygon": [[0, 0], [640, 0], [640, 480]]}
    (error,) = errors_for(camera(algorithms=[{"name": "illegal_parking", "zones": [zone]}]))
    assert "zones[0].polygon" in error and "normalised coordinates" in error


def test_algorithm_params_are_typed():
    algo = {"name": "illegal_parking", "zones": [GOOD_ZONE], "params": {"dwell_seconds": -5, "dwel": 3}}
    assert errors_for(camera(algorithms=[algo])) == [
        "cameras[0].algorithms[0].params.dwell_seconds: Input should be greater than 0",
        "cameras[0].algorithms[0].params.dwel: unknown parameter for illegal_parking (check the spelling)",
    ]


def test_parking_needs_a_zone():
    (error,) = errors_for(camera(algorithms=[{"name": "illegal_parking"}]))
    assert error == "cameras[0].algorithms[0].zones: illegal_parking needs at least one zone"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"timezone": "Mars/Olympus"}, "cameras[0].timezone: unknown timezone 'Mars/Olympus'"),
        ({"id": "cam 1"}, "cameras[0].id: use 1-64 letters"),
        ({"analysis_fps": 0}, "cameras[0].analysis_fps: Input should be greater than 0"),
        ({"urll": "x"}, "cameras[0].urll: unknown field"),
        (
            {"location": {"lat": 100, "lon": 0}},
            "cameras[0].location.lat: Input should be less than or equal to 90",
        ),
    ],
)
def test_camera_field_errors(overrides, expected):
    (error,) = errors_for(camera(**overrides))
    assert error.startswith(expected)


def test_active_hours_validated():
    algo = {"name": "illegal_parking", "zones": [GOOD_ZONE], "active_hours": {"start": "7am", "end": "22:00"}}
    (error,) = errors_for(camera(algorithms=[algo]))
    assert error.startswith("cameras[0].algorithms[0].active_hours.start: '7am' is not a time of day")


def test_bad_camera_is_skipped_and_others_run():
    loaded = parse_config(
        {"cameras": [camera(id="good-1"), camera(id="bad", url=""), camera(id="good-2"), camera(id="good-1")]}
    )
    assert [c.id for c in loaded.config.cameras] == ["good-1", "good-2"]
    assert loaded.camera_errors == [
        "cameras[1].url: must not be empty",
        "cameras[3].id: duplicate camera id 'good-1'",
    ]


def test_defaults_apply_unless_camera_overrides():
    loaded = parse_config(
        {
            "defaults": {"analysis_fps": 5, "timezone": "Asia/Shanghai"},
            "cameras": [camera(analysis_fps=1), {"id": "c2", "url": "x.mp4"}],
        }
    )
    assert [c.analysis_fps for c in loaded.config.cameras] == [1, 5]
    assert loaded.config.cameras[1].timezone == "Asia/Shanghai"


def test_cluster_section_errors_stop_the_load():
    with pytest.raises(ConfigError) as info:
        parse_config({"detector": {"confidence": 2}, "cameras": []})
    assert info.value.errors == ["detector.confidence: Input should be less than 1"]


def test_yaml_errors_and_relative_paths(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("cameras: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    (tmp_path / "clips").mkdir()
    good = tmp_path / "cameras.yaml"
    good.write_text("cameras:\n  - {id: c1, url: clips/a.mp4}\n  - {id: c2, url: 'rtsp://h/x'}\n")
    cams = load_config(good).config.cameras
    assert cams[0].url == str(tmp_path / "clips" / "a.mp4")
    assert cams[1].url == "rtsp://h/x"
