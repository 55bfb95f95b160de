"""Which appearance descriptor finds "the same car / person" best? Measured on real footage.

Every clip is run through the worker's own detector and ByteTrack. Each long track is split in time:
its first half gives query crops (up to 3), its second half gives the gallery entry — the single
best crop by the worker's own :func:`crop_quality`, as the worker would publish it. For each query,
every gallery track of the same family *across all clips* is ranked; recall@k is how often the
query's own track is in the top k. Descriptors compared (all offline):

- ``colour``: HSV histogram (the ``colour`` embedder);
- ``backbone``: the detector's pooled backbone features (Ultralytics ``embed`` on the ``.pt``);
- ``backbone_colour wX``: both, colour weighted X (the ``backbone_colour`` embedder);
- ``osnet`` / ``osnet_colour`` (people only): OSNet-x0.25 person re-identification (ONNX), if given.

The ``colour`` embedder is the baseline: each family ends with the best descriptor's recall@1 as a
ratio of colour's.

Usage (about 5 minutes on 2 cores; crops are cached in --cache):
    python benchmarks/retrieval_quality.py --videos ../shared/videos \
        --model ../shared/models/yolov8n_coco_int8.onnx --backbone ../shared/models/yolov8n_coco_deq.pt \
        [--osnet ../shared/models/osnet_x0_25_msmt17_reid.onnx] [--smoke]

``--smoke`` analyses the first 6 s of two clips, without the cache: it checks the benchmark works.

``--export-crops DIR`` also writes every split track as a re-identification set in the Market-1501
naming that ``retina search eval`` reads: ``DIR/<family>/<identity>_c1_<n>.jpg`` for the query
crops of a track's first half and ``_c2_`` for up to 3 crops of its second half. "Cameras" 1 and 2
are then two moments of one camera, seconds apart — easier than two real cameras.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "False")

import av
import cv2
import numpy as np

from retina.services.core.config import DetectorConfig, TrackerConfig
from retina.services.core.features import (
    SEARCH_FAMILIES,
    BackboneColourEmbedder,
    ColourEmbedder,
    crop_of,
    crop_quality,
    normalise_rows,
)
from retina.services.worker.detector import CameraTracker, Detector

FPS = 5.0
MIN_CROPS = 6  # a track needs this many crops to be split into query and gallery
MIN_SIDE = 24  # pixels: smaller crops carry no appearance
QUERIES_PER_TRACK = 3
SMOKE_CLIPS, SMOKE_SECONDS = 2, 6.0
Track = list[tuple[float, np.ndarray]]  # (quality, crop)


def collect_tracks(
    video: Path, detector: Detector, max_seconds: float | None = None
) -> dict[tuple[str, int], Track]:
    """Crops (with their quality) of every searchable track in (the first ``max_seconds`` of) a
    clip, by (family, track id)."""
    tracker = CameraTracker(TrackerConfig(), FPS, detector)
    crops: dict[tuple[str, int], Track] = defaultdict(list)
    next_t = 0.0
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            if frame.time is None or frame.time < next_t:
                continue
            if max_seconds is not None and frame.time > max_seconds:
                break
            next_t += 1.0 / FPS
            image = frame.to_ndarray(format="bgr24")
            objects = tracker.update(detector.detect([image])[0])
            for obj in objects:
                family = obj.family if obj.family in SEARCH_FAMILIES else None
                x1, y1, x2, y2 = obj.bbox
                if family is None or min(x2 - x1, y2 - y1) < MIN_SIDE:
                    continue
                others = [o.bbox for o in objects if o is not obj]
                quality = crop_quality(image, obj.bbox, others, obj.confidence)
                crops[(family, obj.track_id)].append((quality, crop_of(image, obj.bbox)))
    return {k: v for k, v in crops.items() if len(v) >= MIN_CROPS}


def split(track: Track) -> tuple[list[np.ndarray], np.ndarray]:
    """Query crops from the first half; the best-quality crop of the second half as the gallery."""
    half = len(track) // 2
    queries = [c for _, c in track[:half]][:: max(1, half // QUERIES_PER_TRACK)][:QUERIES_PER_TRACK]
    gallery = max(track[half:], key=lambda qc: qc[0])[1]
    return queries, gallery


def export_crops(tracks: dict[tuple[str, str, int], Track], out: Path) -> dict[str, int]:
    """Write each track's split as Market-1501 crops under ``out/<family>``; identities per family."""
    counts: dict[str, int] = defaultdict(int)
    for (family, _clip, _track_id), track in sorted(tracks.items()):
        counts[family] += 1
        identity = counts[family]
        queries, _ = split(track)
        later = track[len(track) // 2 :]
        gallery = [c for _, c in later][:: max(1, len(later) // QUERIES_PER_TRACK)][:QUERIES_PER_TRACK]
        folder = out / family
        folder.mkdir(parents=True, exist_ok=True)
        for camera, crops in (("c1", queries), ("c2", gallery)):
            for n, crop in enumerate(crops):
                cv2.imwrite(str(folder / f"{identity:04d}_{camera}_{n}.jpg"), crop)
    return dict(counts)


def recall(queries: np.ndarray, query_owner: list[int], gallery: np.ndarray, ks=(1, 10)) -> dict[int, float]:
    scores = queries @ gallery.T
    ranks = (-scores).argsort(axis=1)
    return {k: float(np.mean([owner in ranks[i, :k] for i, owner in enumerate(query_owner)])) for k in ks}


def osnet_descriptor(crops: list[np.ndarray], session) -> np.ndarray:
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    rgb = [cv2.cvtColor(cv2.resize(c, (128, 256)), cv2.COLOR_BGR2RGB) / 255.0 for c in crops]
    batch = np.stack([((image - mean) / std).transpose(2, 0, 1) for image in rgb]).astype(np.float32)
    return normalise_rows(session.run(None, {session.get_inputs()[0].name: batch})[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="the detector (as the worker runs it)")
    parser.add_argument("--backbone", type=Path, required=True, help=".pt checkpoint of the detector")
    parser.add_argument("--osnet", type=Path, help="OSNet person re-identification ONNX")
    parser.add_argument("--cache", type=Path, default=Path("var/retrieval_tracks.pkl"))
    parser.add_argument("--smoke", action="store_true", help="6 s of two clips, no cache")
    parser.add_argument("--export-crops", type=Path, help="also write the split tracks as Market-1501 crops")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    videos = sorted(args.videos.glob("*.mp4"))
    max_seconds = None
    if args.smoke:
        videos, max_seconds, args.cache = videos[:SMOKE_CLIPS], SMOKE_SECONDS, None

    if args.cache is not None and args.cache.exists():
        tracks = pickle.loads(args.cache.read_bytes())
    else:
        detector = Detector(DetectorConfig(model=str(args.model)))
        tracks = {}
        for video in videos:
            for (family, track_id), crops in collect_tracks(video, detector, max_seconds).items():
                tracks[(family, video.stem, track_id)] = crops
        if args.cache is not None:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            args.cache.write_bytes(pickle.dumps(tracks))

    if args.export_crops is not None:
        for family, identities in export_crops(tracks, args.export_crops).items():
            print(f"exported {identities} {family} identities to {args.export_crops / family}")

    backbone = BackboneColourEmbedder(str(args.backbone))
    colour = ColourEmbedder()
    session = None
    if args.osnet:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(args.osnet), providers=["CPUExecutionProvider"])

    print(f"{'family':10} {'descriptor':20} {'tracks':>6} {'queries':>7} {'recall@1':>9} {'recall@10':>10}")
    for family in ("person", "vehicle", "non_motor"):
        keys = [k for k in tracks if k[0] == family]
        if len(keys) < 2:
            continue
        query_crops, owners, gallery_crops = [], [], []
        for index, key in enumerate(keys):
            queries, gallery = split(tracks[key])
            query_crops += queries
            owners += [index] * len(queries)
            gallery_crops.append(gallery)
        parts = {
            "colour": (colour.embed(query_crops), colour.embed(gallery_crops)),
            "backbone": (backbone.backbone_features(query_crops), backbone.backbone_features(gallery_crops)),
        }
        if session is not None and family == "person":
            parts["osnet"] = tuple(osnet_descriptor(crops, session) for crops in (query_crops, gallery_crops))
        descriptors = dict(parts)
        for base in ("backbone", "osnet"):
            if base not in parts:
                continue
            for w in (0.3, 0.5, 0.7):
                descriptors[f"{base}_colour w{w}"] = tuple(
                    normalise_rows(np.hstack([np.sqrt(1 - w) * base_part, np.sqrt(w) * colour_part]))
                    for base_part, colour_part in zip(parts[base], parts["colour"], strict=True)
                )
        at_1 = {}
        for name, (q, g) in descriptors.items():
            r = recall(q, owners, g)
            at_1[name] = r[1]
            print(f"{family:10} {name:20} {len(keys):6} {len(owners):7} {r[1]:9.2f} {r[10]:10.2f}")
        best = max(at_1, key=at_1.get)
        ratio = f"{at_1[best] / at_1['colour']:.2f}x" if at_1["colour"] else "n/a (colour found none)"
        print(
            f"{family:10} ratio best ({best}) / colour baseline, recall@1: {at_1[best]:.2f} / "
            f"{at_1['colour']:.2f} = {ratio}"
        )


if __name__ == "__main__":
    main()
