"""`retina analyze` on real footage with the real detector, and on bad sources."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import pytest
import yaml

from tests.conftest import MODEL, footage, python_cli

pytestmark = pytest.mark.slow

KERB = [[0.0, 0.5], [0.3, 0.5], [0.3, 1.0], [0.0, 1.0]]  # where a car stands, lower left
LANES = [[0.3, 0.22], [0.95, 0.22], [0.95, 0.6], [0.3, 0.6]]  # moving traffic and crossings


def write_config(tmp_path: Path, zones: list[dict], **params) -> Path:
    config = {
        "detector": {"model": str(MODEL)},
        "cameras": [
            {
                "id": "cam-test",
                "url": "unused-for-analyze.mp4",
                "algorithms": [
                    {"name": "illegal_parking", "zones": zones, "params": {"dwell_seconds": 10, **params}}
                ],
            }
        ],
    }
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def analyze(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(python_cli("analyze", *args), capture_output=True, text=True, timeout=timeout)


def test_standing_car_in_zone_gives_one_incident_and_lanes_give_none(tmp_path: Path):
    video = footage("intersection.mp4")
    config = write_config(tmp_path, [{"name": "kerb", "polygon": KERB}, {"name": "lanes", "polygon": LANES}])
    result = analyze(str(video), "--config", str(config), "--media-dir", str(tmp_path / "media"))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events, f"no incident; stderr: {result.stderr[-2000:]}"
    assert {e["zone"] for e in events} == {"kerb"}, "moving traffic raised an incident"
    assert len({e["id"] for e in events}) == 1, "one standing car must be one incident"
    new, end = events[0], events[-1]
    assert new["event"] == "new" and end["event"] == "end"
    assert new["schema"] == "retina.incident/1" and new["camera_id"] == "cam-test"
    assert new["dwell_seconds"] == pytest.approx(10, abs=1)
    # The car stands from the first frame until it pulls out around 20 s into the clip.
    assert 14 <= end["dwell_seconds"] <= 24
    assert new["bbox"]["x1"] < 0.1 and new["bbox"]["y2"] > 0.7
    snapshot = tmp_path / "media" / new["snapshot"]["path"]
    assert snapshot.read_bytes()[:2] == b"\xff\xd8"
    with av.open(str(tmp_path / "media" / new["clip"]["path"])) as clip:  # 5 s before to 5 s after the alert
        frames = list(clip.decode(video=0))
    assert frames[-1].time - frames[0].time >= 9.5


def test_corrupt_file_is_a_clear_error(tmp_path: Path):
    video = footage("intersection.mp4")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[:200_000])  # moov atom is at the end: unreadable
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 1000)
    config = write_config(tmp_path, [{"name": "kerb", "polygon": KERB}])
    for bad in (truncated, garbage, tmp_path / "missing.mp4"):
        result = analyze(str(bad), "--config", str(config), timeout=120)
        assert result.returncode == 1
        assert "camera cam-test" in result.stderr and str(bad) in result.stderr
        assert "Traceback" not in result.stderr


def test_unreachable_stream_is_a_clear_error(tmp_path: Path, model_path: Path):
    config = write_config(tmp_path, [{"name": "kerb", "polygon": KERB}])
    result = analyze("rtsp://127.0.0.1:9/nothing", "--config", str(config), "--duration", "4", timeout=120)
    assert result.returncode == 1
    assert "camera cam-test" in result.stderr and "cannot open rtsp://127.0.0.1:9/nothing" in result.stderr


def test_config_errors_name_the_field(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "cameras:\n  - id: cam-1\n    url: x.mp4\n    algorithms:\n      - name: illegal_parking\n"
        "        zones: [{name: z, polygon: [[0, 0], [1, 1]]}]\n"
    )
    result = analyze("x.mp4", "--config", str(bad), timeout=60)
    assert result.returncode == 2
    assert "cameras[0].algorithms[0].zones[0].polygon: needs at least 3 points" in result.stderr
