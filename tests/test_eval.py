"""The scene composer and `retina eval`: labelled scenes from real footage, scored with F1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from retina.services.cli.scenes import Overlay, Score, TruthIncident, compose, load_crop, match
from tests.conftest import REPO, footage, python_cli


def test_composer_places_the_crop_only_while_scheduled(tmp_path: Path):
    video = footage("sidewalk_shopfront.mp4")
    overlay = Overlay(crop="bollard", x=0.5, y=0.5, width=0.05, appear_seconds=1, disappear_seconds=2)
    crop = load_crop("bollard", tmp_path)
    out = tmp_path / "scene.mp4"
    compose(video, out, [(overlay, crop)], duration=3)
    patch = {}
    with av.open(str(out)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            h, w = image.shape[:2]
            region = image[h // 2 + 5 : h // 2 + 15, w // 2 + 2 : w // 2 + 12]
            patch[round(float(frame.time), 1)] = region.mean()
    inside = [v for t, v in patch.items() if 1.1 <= t < 1.9]
    outside = [v for t, v in patch.items() if t < 0.9 or t > 2.1]
    assert inside and outside
    assert abs(np.mean(inside) - np.mean(outside)) > 20, "the crop did not change the frame where placed"


def test_unknown_crop_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match=r"overlay crop 'trashbag\.png': not a built-in crop"):
        load_crop("trashbag.png", tmp_path)


def test_matching_scores_overlap_once():
    truth = [TruthIncident(algorithm="a", start_seconds=10, end_seconds=20)]
    assert match(truth, [(12, 30), (13, 18), (40, 50)]) == (1, 2, 0, [2])
    assert match(truth, []) == (0, 0, 1, [])
    score = Score(true_positives=9, false_positives=1, false_negatives=1)
    assert score.precision == pytest.approx(0.9) and score.f1 == pytest.approx(0.9)


@pytest.mark.slow
def test_every_algorithm_meets_the_bar_on_the_example_scenes(tmp_path: Path):
    footage("intersection.mp4")
    result = subprocess.run(
        python_cli("eval", str(REPO / "examples" / "scenes.yaml"), "--work-dir", str(tmp_path), "--json"),
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    scores = report["algorithms"]
    assert set(scores) == {"illegal_parking", "exposed_trash", "crowd_gathering", "street_vending"}
    for name, score in scores.items():
        assert score["false_positives"] == 0, f"{name}: false alarm in {report['scenes']}"
        if score["true_positives"] + score["false_negatives"]:
            assert score["f1"] >= 0.9, f"{name}: {score}"
