"""What does the video-quality monitor cost next to the detector? Both measured in the same run.

The monitor (:class:`retina.services.worker.quality.QualityMonitor`, every check on, a reference
view taken) and the worker's detector (:class:`retina.services.worker.detector.Detector`, one
frame per call, as a lone camera gets it) each process the same decoded frames of a clip; the
time per frame is the median over the frames. A camera costs, per second of video, the detector
``analysis_fps`` times and the monitor ``1 / quality.sample_seconds`` times (defaults: 2 and 1).

Usage:

    python benchmarks/quality_monitor.py --video ../shared/videos/intersection.mp4 \\
        --model ../shared/models/yolov8n_coco_int8.onnx [--smoke]

``--smoke`` measures 8 frames: it checks the benchmark works, its figures mean little.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "False")

import av
import numpy as np

from retina.services.core.config import DetectorConfig
from retina.services.core.quality import QualityConfig
from retina.services.worker.detector import Detector
from retina.services.worker.quality import QualityMonitor

WARM_UP = 3  # calls of each before timing (lazy initialisation, caches)


def decode(video: Path, count: int, every_seconds: float) -> list[np.ndarray]:
    """``count`` frames of ``video``, one every ``every_seconds`` (looping a short clip)."""
    frames: list[np.ndarray] = []
    while len(frames) < count:
        due = 0.0
        with av.open(str(video)) as container:
            for frame in container.decode(video=0):
                if frame.time is None or frame.time + 1e-6 < due:
                    continue
                frames.append(frame.to_ndarray(format="bgr24"))
                due = frame.time + every_seconds
                if len(frames) == count:
                    break
    return frames


def median_seconds(run, frames: list[np.ndarray]) -> float:
    """The median wall time of ``run(index, frame)`` over the frames, after a warm-up."""
    for index, frame in enumerate(frames[:WARM_UP]):
        run(index, frame)
    times = []
    for index, frame in enumerate(frames):
        started = time.perf_counter()
        run(index + WARM_UP, frame)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=120, help="frames each of the two processes")
    parser.add_argument(
        "--analysis-fps", type=float, default=2.0, help="the detector's frames per camera-second"
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda:0 (half precision with a .pt model)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 8 frames")
    args = parser.parse_args()
    if args.smoke:
        args.frames = 8
    logging.basicConfig(level=logging.ERROR)

    quality = QualityConfig()
    frames = decode(args.video, args.frames + WARM_UP, 1.0 / args.analysis_fps)
    height, width = frames[0].shape[:2]
    processor = platform.processor() or "cpu"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {processor}; device {args.device}")
    print(f"video: {args.video.name} ({width}x{height}); model: {args.model.name}; {args.frames} frames each")

    detector = Detector(DetectorConfig(model=str(args.model), device=args.device))
    detector_seconds = median_seconds(lambda _i, frame: detector.detect([frame]), frames)

    monitor = QualityMonitor("bench", quality)
    sample = quality.sample_seconds
    for index, frame in enumerate(frames[: int(quality.reference_settle_seconds / sample) + 2]):
        monitor.observe(frame, index * sample)  # a clean start: the reference view is taken
    assert monitor.reference is not None, "the monitor took no reference view"
    offset = len(frames) * sample
    monitor_seconds = median_seconds(lambda i, frame: monitor.observe(frame, offset + i * sample), frames)

    per_second_detector = detector_seconds * args.analysis_fps
    per_second_monitor = monitor_seconds / sample
    print(f"{'per camera frame':40} {'ms':>8}")
    print(f"{'baseline: detector, one frame per call':40} {detector_seconds * 1000:8.2f}")
    print(f"{'quality monitor, every check':40} {monitor_seconds * 1000:8.2f}")
    print(f"ratio monitor / detector per frame: {monitor_seconds / detector_seconds:.3f}x")
    print(
        f"per camera-second (detector {args.analysis_fps:g} frames, monitor one sample every {sample:g} s): "
        f"{per_second_detector * 1000:.1f} ms / {per_second_monitor * 1000:.1f} ms; "
        f"monitor share of the detector: {per_second_monitor / per_second_detector:.3f}x"
    )


if __name__ == "__main__":
    main()
