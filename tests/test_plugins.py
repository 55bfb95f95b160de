"""A department's algorithm package, installed with pip, is discovered and runs (no change to services/)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import MODEL, REPO, footage, python_cli

FIXTURE = REPO / "tests" / "fixtures" / "retina_plugin_example"


def test_installed_plugin_is_discovered_and_runs(tmp_path: Path):
    video = footage("intersection.mp4")
    target, source = tmp_path / "site", tmp_path / "plugin-src"
    shutil.copytree(FIXTURE, source)  # pip builds in the source folder; keep the checkout clean
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    config = tmp_path / "cameras.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "detector": {"model": str(MODEL)},
                "cameras": [
                    {
                        "id": "cam-plugin",
                        "url": "x.mp4",
                        "algorithms": [
                            {
                                "name": "loitering_vehicle",
                                "zones": [
                                    {"name": "kerb", "polygon": [[0, 0.5], [0.3, 0.5], [0.3, 1], [0, 1]]}
                                ],
                                "params": {"dwell_seconds": 5},
                            }
                        ],
                    }
                ],
            }
        )
    )
    without = subprocess.run(python_cli("validate", "--config", str(config)), capture_output=True, text=True)
    assert "unknown algorithm 'loitering_vehicle'" in without.stderr
    result = subprocess.run(
        python_cli("analyze", str(video), "--config", str(config)), capture_output=True, text=True, env=env,
        timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events and {e["algorithm"] for e in events} == {"loitering_vehicle"}
    assert events[0]["event"] == "new" and events[0]["algorithm_version"] == "0.1.0"
