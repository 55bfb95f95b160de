"""Labelled scenes for evaluation: real footage with real image crops placed on a known timeline.

A scene file (YAML) lists scenes; each names a base video, the camera configuration to evaluate
(algorithms and zones, as in a cluster config), overlays (an image crop, where, from when to when)
and the ground truth: the incidents a correct system raises (algorithm, start and end in seconds
of the scene). ``retina eval SCENES.yaml`` composes each scene, runs the worker's pipeline over it
and scores the incidents it raised against the truth.

Crops are real photographs: by default the sample images that ship inside Ultralytics, so scenes
can be composed on any machine; a scene may also point at its own image files.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retina.algorithms.sdk import IncidentEvent
from retina.services.core.config import (
    CameraConfig,
    CameraDefaults,
    ConfigError,
    RetinaConfig,
    format_validation_error,
    validate_camera,
)

# Real crops from the images bundled with Ultralytics: (file, (x1, y1, x2, y2) in pixels).
BUILTIN_CROPS = {
    "bollard": ("bus.jpg", (420, 600, 462, 745)),  # a dark street object, stands in for a dumped item
    "man_in_black": ("bus.jpg", (224, 400, 342, 862)),
    "man_in_coat": ("bus.jpg", (56, 470, 250, 900)),
}
SCENE_FPS = 10  # composed scenes are written at this rate (the pipeline samples 1-2 fps anyway)
EPOCH_ORIGIN = 1_700_000_000.0  # stream time 0 of a composed scene, so truth and results line up


class VideoCrop(BaseModel):
    """A crop taken from a frame of a video (pixels of that frame)."""

    model_config = ConfigDict(extra="forbid")
    video: str
    at_seconds: float = Field(ge=0)
    box: tuple[int, int, int, int]


class Overlay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    crop: str | VideoCrop = Field(
        description="a built-in crop name, an image path, or a crop of a video frame"
    )
    x: float = Field(ge=0, le=1, description="left edge, fraction of the frame width")
    y: float = Field(ge=0, le=1, description="top edge, fraction of the frame height")
    width: float = Field(gt=0, le=1, description="width, fraction of the frame width")
    appear_seconds: float = Field(ge=0)
    disappear_seconds: float = Field(gt=0)


class TruthIncident(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algorithm: str
    start_seconds: float = Field(ge=0)
    end_seconds: float = Field(gt=0)


class Scene(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    video: str
    duration_seconds: float | None = Field(default=None, gt=0)
    camera: dict[str, Any]
    overlays: list[Overlay] = Field(default_factory=list)
    truth: list[TruthIncident] = Field(default_factory=list, description="empty: a negative scene")


class SceneFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    detector: dict[str, Any] = Field(default_factory=dict)
    scenes: list[Scene]


def ultralytics_asset(name: str) -> Path:
    """A sample image shipped inside the Ultralytics package (found without importing it)."""
    spec = importlib.util.find_spec("ultralytics")
    return Path(spec.origin).parent / "assets" / name


def load_crop(name: str | VideoCrop, base: Path) -> np.ndarray:
    """A built-in crop by name, an image file, or a crop of a video frame (paths relative to ``base``)."""
    if isinstance(name, VideoCrop):
        x1, y1, x2, y2 = name.box
        with av.open(str(base / name.video)) as container:
            for frame in container.decode(video=0):
                if frame.time is not None and frame.time >= name.at_seconds:
                    return frame.to_ndarray(format="bgr24")[y1:y2, x1:x2].copy()
        raise ValueError(f"overlay crop: {name.video} is shorter than {name.at_seconds} s")
    if name in BUILTIN_CROPS:
        file, (x1, y1, x2, y2) = BUILTIN_CROPS[name]
        image = cv2.imread(str(ultralytics_asset(file)))
        return image[y1:y2, x1:x2].copy()
    image = cv2.imread(str(base / name))
    if image is None:
        raise ValueError(
            f"overlay crop {name!r}: not a built-in crop ({', '.join(BUILTIN_CROPS)}) or an image"
        )
    return image


def compose(
    video: Path, out: Path, overlays: list[tuple[Overlay, np.ndarray]], duration: float | None
) -> None:
    """Write ``video`` with the overlays pasted in while they are scheduled (no audio, SCENE_FPS)."""
    with av.open(str(video)) as source, av.open(str(out), "w") as sink:
        stream = sink.add_stream("mpeg4", rate=SCENE_FPS)
        stream.bit_rate = 2_000_000
        next_t = 0.0
        for frame in source.decode(video=0):
            t = float(frame.time or 0.0)
            if duration is not None and t > duration:
                break
            if t + 1e-6 < next_t:
                continue
            next_t += 1.0 / SCENE_FPS
            image = frame.to_ndarray(format="bgr24")
            h, w = image.shape[:2]
            if stream.width == 0 or not stream.width:
                stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            for overlay, crop in overlays:
                if overlay.appear_seconds <= t < overlay.disappear_seconds:
                    _paste(image, crop, overlay)
            image = image[: stream.height, : stream.width]
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            ):
                sink.mux(packet)
        for packet in stream.encode():
            sink.mux(packet)


def _paste(image: np.ndarray, crop: np.ndarray, overlay: Overlay) -> None:
    h, w = image.shape[:2]
    width = max(2, round(overlay.width * w))
    height = max(2, round(crop.shape[0] * width / crop.shape[1]))
    x, y = round(overlay.x * w), round(overlay.y * h)
    width, height = min(width, w - x), min(height, h - y)
    image[y : y + height, x : x + width] = cv2.resize(crop, (width, height))[:height, :width]


@dataclass
class Score:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    start_errors: list[float] | None = None

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def match(truth: list[TruthIncident], found: list[tuple[float, float]]) -> tuple[int, int, int, list[float]]:
    """Greedy one-to-one matching by time overlap; returns TP, FP, FN and start-time errors."""
    unmatched = list(found)
    tp, errors = 0, []
    for item in truth:
        overlapping = [f for f in unmatched if f[0] < item.end_seconds and f[1] > item.start_seconds]
        if overlapping:
            best = min(overlapping, key=lambda f: abs(f[0] - item.start_seconds))
            unmatched.remove(best)
            tp += 1
            errors.append(best[0] - item.start_seconds)
    return tp, len(unmatched), len(truth) - tp, errors


def run_scene(
    config: RetinaConfig, camera: CameraConfig, video: Path, *, quality: bool = False
) -> list[IncidentEvent]:
    """Run one camera's pipeline over a video; return every incident event. ``quality``: run the
    video-quality checks as a worker does (real footage; composed scenes leave them off)."""
    from retina.services.worker.detector import Detector
    from retina.services.worker.pipeline import Analyzer
    from retina.services.worker.sinks import MemorySink

    sink = MemorySink()
    analyzer = Analyzer(
        Detector(config.detector),
        config.tracker,
        config.ingest,
        on_events=sink.deliver,
        on_status=lambda *_: None,
        realtime=False,
        retry_files=False,
        file_start_epoch=EPOCH_ORIGIN,
        motion=config.motion,
        quality=config.quality if quality else None,
    )
    stop = threading.Event()
    loop = threading.Thread(target=analyzer.run, args=(stop,))
    loop.start()
    analyzer.assign(camera.model_copy(update={"url": str(video)}))
    while not analyzer.all_finished():
        stop.wait(0.1)
    analyzer.release(camera.id, reason="end_of_stream")
    stop.set()
    loop.join()
    sink.close()
    return sink.events


def evaluate(
    scene_file: Path, work_dir: Path, detector_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Compose and run every scene; return per-algorithm precision, recall, F1 and start-time error."""
    base = scene_file.resolve().parent
    try:
        spec = SceneFile.model_validate(yaml.safe_load(scene_file.read_text()))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    detector = {**spec.detector, **(detector_overrides or {})}
    if detector.get("model") and not Path(detector["model"]).is_absolute():
        detector["model"] = str((base / detector["model"]).resolve())
    config = RetinaConfig.model_validate({"detector": detector})
    work_dir.mkdir(parents=True, exist_ok=True)
    scores: dict[str, Score] = {}
    scenes_out = []
    for index, scene in enumerate(spec.scenes):
        camera = validate_camera({"id": f"scene-{index}", "url": "scene.mp4", **scene.camera},
                                 f"scenes[{index}].camera", CameraDefaults())  # fmt: skip
        overlays = [(o, load_crop(o.crop, base)) for o in scene.overlays]
        composed = work_dir / f"{index:02d}-{scene.name}.mp4"
        compose((base / scene.video).resolve(), composed, overlays, scene.duration_seconds)
        truth_file = composed.with_suffix(".truth.json")  # the ground truth the scene was built with
        truth_file.write_text(json.dumps([t.model_dump() for t in scene.truth], indent=2))
        events = run_scene(config, camera, composed)
        found: dict[str, dict[str, tuple[float, float]]] = {}
        for event in events:
            start = event.started_at - EPOCH_ORIGIN
            end = (event.ended_at or event.last_seen_at) - EPOCH_ORIGIN
            found.setdefault(event.algorithm, {})[event.incident_id] = (start, end)
        algorithms = {spec_.name for spec_ in camera.algorithms}
        for name in sorted(algorithms):
            truth = [t for t in scene.truth if t.algorithm == name]
            tp, fp, fn, errors = match(truth, sorted(found.get(name, {}).values()))
            score = scores.setdefault(name, Score(start_errors=[]))
            score.true_positives += tp
            score.false_positives += fp
            score.false_negatives += fn
            score.start_errors += errors
        scenes_out.append(
            {
                "scene": scene.name,
                "truth": len(scene.truth),
                "found": {k: sorted(v.values()) for k, v in found.items()},
            }
        )
    return {
        "algorithms": {
            name: {
                "precision": round(s.precision, 3),
                "recall": round(s.recall, 3),
                "f1": round(s.f1, 3),
                "true_positives": s.true_positives,
                "false_positives": s.false_positives,
                "false_negatives": s.false_negatives,
                "mean_abs_start_error_seconds": round(float(np.mean(np.abs(s.start_errors))), 2)
                if s.start_errors
                else None,
            }
            for name, s in sorted(scores.items())
        },
        "scenes": scenes_out,
    }


def format_report(report: dict[str, Any]) -> str:
    """A table of the evaluation for people."""
    header = ("algorithm", "precision", "recall", "F1", "TP", "FP", "FN", "start err s")
    lines = ["{:18} {:>9} {:>7} {:>6} {:>4} {:>4} {:>4} {:>11}".format(*header)]
    for name, s in report["algorithms"].items():
        err = "-" if s["mean_abs_start_error_seconds"] is None else f"{s['mean_abs_start_error_seconds']:.1f}"
        lines.append(
            f"{name:18} {s['precision']:9.2f} {s['recall']:7.2f} {s['f1']:6.2f} {s['true_positives']:4} "
            f"{s['false_positives']:4} {s['false_negatives']:4} {err:>11}"
        )
    return "\n".join(lines)
