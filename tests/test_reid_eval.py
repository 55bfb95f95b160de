"""Re-identification scoring (``retina search eval``) on hand-checkable synthetic folders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from retina.services.cli import main as retina
from retina.services.search.reid_eval import evaluate, list_crops, score


def test_score_is_hand_checkable() -> None:
    # Two cameras, identities a and b. Vectors chosen so that a's queries find a first, and b's
    # queries find the other identity first.
    a1, a2 = [1.0, 0.0], [0.9, 0.436]
    b1, b2 = [0.8, 0.6], [0.0, 1.0]
    vectors = np.array([a1, b1, a2, b2], np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    result = score(vectors, ["a", "b", "a", "b"], ["c1", "c1", "c2", "c2"])
    # a1 -> gallery {a2, b2}: a2 first (AP 1). b1 -> {a2, b2}: b1·a2 = 0.98 > b1·b2 = 0.6 -> rank 2 (AP 1/2).
    # a2 -> {a1, b1}: a2·a1 = 0.9 < a2·b1 = 0.98 -> rank 2 (AP 1/2). b2 -> {a1, b1}: b1 first (AP 1).
    assert result == {"recall@1": 0.5, "recall@5": 1.0, "recall@10": 1.0, "mAP": 0.75, "queries": 4}


def test_score_leaves_out_queries_without_a_match_elsewhere() -> None:
    vectors = np.eye(3, dtype=np.float32)
    # c is seen by camera 1 only: it is no query. Orthogonal vectors: ties keep folder order.
    result = score(vectors, ["a", "a", "c"], ["1", "2", "1"])
    assert result["queries"] == 2
    # a@1 -> gallery {a@2}: hit at rank 1. a@2 -> gallery {a@1, c@1} (both score 0): a@1 first (order).
    assert result["recall@1"] == 1.0 and result["mAP"] == 1.0


def _folder(tmp_path: Path) -> Path:
    colours = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}
    for identity, bgr in colours.items():
        for camera in ("c1", "c2"):
            cv2.imwrite(str(tmp_path / f"{identity}_{camera}_0.jpg"), np.full((40, 20, 3), bgr, np.uint8))
    (tmp_path / "LICENSE.txt").write_text("not a crop")
    return tmp_path


def test_evaluate_reads_market1501_names(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert len(list_crops(folder)) == 6
    mean_colour = lambda crops: np.array([c.reshape(-1, 3).mean(0) + 1 for c in crops])  # noqa: E731
    embed = lambda crops: mean_colour(crops) / np.linalg.norm(mean_colour(crops), axis=1, keepdims=True)  # noqa: E731
    result = evaluate(folder, embed, batch=4)
    assert result["recall@1"] == 1.0 and result["mAP"] == 1.0
    assert (result["images"], result["identities"], result["queries"]) == (6, 3, 6)


def test_evaluate_refuses_a_folder_without_crops(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no crops"):
        evaluate(tmp_path, lambda crops: np.zeros((len(crops), 2)))


def test_cli_prints_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path)
    assert retina(["search", "eval", str(folder), "--family", "vehicle", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"recall@1", "recall@5", "recall@10", "mAP"}
    assert result["recall@1"] == 1.0  # plain colours: the colour histogram separates them


def test_cli_names_the_missing_osnet_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path)
    code = retina(["search", "eval", str(folder), "--family", "person", "--embedder", "osnet"])
    assert code == 2
    assert "features.osnet_model" in capsys.readouterr().err
