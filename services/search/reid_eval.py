"""Re-identification scores of an embedder on a folder of crops (``retina search eval``).

Crops are named in the Market-1501 convention ``<identity>_<camera>_<n>.<ext>`` (``car0003_cam1_0.jpg``).
Every image queries all images of the *other* cameras; a hit is an image of the same identity.
recall@k is the share of queries with a hit in their first k results (the CMC curve), mAP the mean
average precision over the ranked gallery. Queries with no image of their identity elsewhere are left
out, as in Market-1501.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

NAME_PATTERN = re.compile(r"^(?P<identity>[^_]+)_(?P<camera>[^_]+)_(?P<n>[^_.]+)\.(jpe?g|png|bmp)$", re.I)
RECALL_AT = (1, 5, 10)


@dataclass(frozen=True)
class Crop:
    path: Path
    identity: str
    camera: str


def list_crops(folder: Path) -> list[Crop]:
    """The crops of a folder whose names follow the convention (others, e.g. licence files, are skipped)."""
    crops = []
    for path in sorted(folder.iterdir()):
        match = NAME_PATTERN.match(path.name)
        if match and path.is_file():
            crops.append(Crop(path, match["identity"], match["camera"]))
    return crops


def score(vectors: np.ndarray, identities: Sequence[str], cameras: Sequence[str]) -> dict[str, float | int]:
    """recall@1/5/10 and mAP of L2-normalised ``vectors`` (one row per crop), every crop querying the
    crops of the other cameras by inner product."""
    vectors = np.asarray(vectors, np.float32)
    ids = np.asarray(identities)
    cams = np.asarray(cameras)
    similarity = vectors @ vectors.T
    hits_at = dict.fromkeys(RECALL_AT, 0)
    precisions = []
    for q in range(len(ids)):
        gallery = np.flatnonzero(cams != cams[q])
        relevant = ids[gallery] == ids[q]
        if not relevant.any():
            continue
        # Stable sort on -similarity: ties keep folder order (deterministic).
        order = np.argsort(-similarity[q, gallery], kind="stable")
        ranked = relevant[order]
        first = int(np.argmax(ranked))
        for k in RECALL_AT:
            hits_at[k] += first < k
        positions = np.flatnonzero(ranked) + 1  # 1-based ranks of the hits
        precisions.append(float(np.mean(np.arange(1, len(positions) + 1) / positions)))
    queries = len(precisions)
    result: dict[str, float | int] = {
        f"recall@{k}": round(hits_at[k] / queries, 4) if queries else 0.0 for k in RECALL_AT
    }
    result["mAP"] = round(float(np.mean(precisions)), 4) if queries else 0.0
    result["queries"] = queries
    return result


def evaluate(folder: Path, embed: Callable[[list[np.ndarray]], np.ndarray], batch: int = 64) -> dict:
    """Embed every crop of ``folder`` and score them (see :func:`score`)."""
    crops = list_crops(folder)
    if not crops:
        raise ValueError(f"{folder}: no crops named <identity>_<camera>_<n>.jpg")
    rows = []
    for start in range(0, len(crops), batch):
        images = []
        for crop in crops[start : start + batch]:
            image = cv2.imread(str(crop.path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{crop.path}: not a readable image")
            images.append(image)
        rows.append(np.asarray(embed(images), np.float32))
    result = score(np.vstack(rows), [c.identity for c in crops], [c.camera for c in crops])
    result["images"] = len(crops)
    result["identities"] = len({c.identity for c in crops})
    return result
