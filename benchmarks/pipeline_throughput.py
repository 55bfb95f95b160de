"""How many cameras does this machine analyse in real time? retina's pipeline vs a naive baseline.

retina: N cameras in one worker (one decode thread each, sampled to ``analysis_fps`` by timestamp,
one shared detector, ByteTrack and illegal_parking per camera), run flat out over a file.
Baseline, measured in the same run: one Ultralytics ``model.track(source, stream=True)`` loop,
which decodes and detects every frame.

"Cameras in real time" = seconds of video analysed per second of wall time (a camera produces one
second of video per second). Usage:

    python benchmarks/pipeline_throughput.py --video ../shared/videos/intersection.mp4 \
        --model ../shared/models/yolov8n_coco_int8.onnx [--smoke]

``--smoke`` runs 2 cameras for 2 video-seconds each: it checks the benchmark works, its figures
mean little.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import threading
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "False")

from retina.services.core.config import parse_config
from retina.services.worker.detector import Detector
from retina.services.worker.pipeline import Analyzer


def retina_throughput(
    video: Path,
    model: Path,
    cameras: int,
    fps: float,
    seconds: float,
    max_batch: int = 8,
    max_wait_ms: float = 20,
    device: str = "cpu",
) -> float:
    """Video-seconds analysed per wall-second by one worker running ``cameras`` copies of the clip.

    ``max_batch=1`` is one inference call per frame; larger batches frames of several cameras into
    one call (waiting at most ``max_wait_ms`` for them), as a worker's device lane does.
    """
    config = parse_config(
        {
            "detector": {"model": str(model), "device": device, "half": device.startswith("cuda")},
            "cameras": [
                {
                    "id": f"cam-{i}",
                    "url": str(video),
                    "analysis_fps": fps,
                    "algorithms": [
                        {
                            "name": "illegal_parking",
                            "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
                        }
                    ],
                }
                for i in range(cameras)
            ],
        }
    ).config
    detector = Detector(config.detector)
    detector.detect([__import__("numpy").zeros((480, 640, 3), dtype="uint8")])  # warm-up
    analyzer = Analyzer(
        detector,
        config.tracker,
        config.ingest,
        on_events=lambda *_: None,
        on_status=lambda *_: None,
        realtime=False,
        retry_files=False,
        max_batch=max_batch,
        max_wait_seconds=max_wait_ms / 1000,
    )
    stop = threading.Event()
    loop = threading.Thread(target=analyzer.run, args=(stop,))
    loop.start()
    started = time.perf_counter()
    for camera in config.cameras:
        analyzer.assign(camera)
    target = seconds * fps
    while True:
        health = analyzer.health()
        if all(h.frames_analysed >= target for h in health.values()) or analyzer.all_finished():
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    analysed = sum(h.frames_analysed for h in health.values())
    for camera in config.cameras:
        analyzer.release(camera.id)
    stop.set()
    loop.join()
    return analysed / fps / wall


def baseline_throughput(video: Path, model: Path, seconds: float) -> float:
    """Video-seconds per wall-second of one ``model.track(stream=True)`` loop over every frame."""
    import av
    from ultralytics import YOLO

    with av.open(str(video)) as container:
        video_fps = float(container.streams.video[0].average_rate)
    yolo = YOLO(str(model), task="detect")
    frames_needed = int(seconds * video_fps)
    started = None
    frames = 0
    for _ in yolo.track(str(video), stream=True, conf=0.1, verbose=False, tracker="bytetrack.yaml"):
        if started is None:  # exclude model load and warm-up from the timing
            started = time.perf_counter()
            continue
        frames += 1
        if frames >= frames_needed:
            break
    wall = time.perf_counter() - started
    return frames / video_fps / wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--analysis-fps", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="video seconds per camera")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda:0 (half precision with a .pt model)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 2 cameras, 2 video-seconds")
    args = parser.parse_args()
    if args.smoke:
        args.cameras, args.seconds = 2, 2.0
    logging.basicConfig(level=logging.ERROR)

    processor = platform.processor() or "cpu"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {processor}; device {args.device}")
    print(f"video: {args.video.name}; model: {args.model.name}")
    baseline = baseline_throughput(args.video, args.model, args.seconds / 2)
    common = (args.video, args.model, args.cameras, args.analysis_fps, args.seconds)
    per_frame = retina_throughput(*common, max_batch=1, device=args.device)
    batched = retina_throughput(*common, max_batch=8, device=args.device)
    print(
        f"retina: one worker, {args.cameras} cameras @ {args.analysis_fps:g} fps, ByteTrack + illegal_parking"
    )
    print(f"{'pipeline':52} {'cameras in real time':>20}")
    print(f"{'baseline: model.track(stream=True), every frame':52} {baseline:20.2f}")
    print(f"{'retina, one inference call per frame':52} {per_frame:20.2f}")
    print(f"{'retina, cross-stream batches of up to 8 frames':52} {batched:20.2f}")
    print(f"ratio retina (batched) / baseline: {batched / baseline:.1f}x")
    print(f"ratio batched / one call per frame: {batched / per_frame:.2f}x")


if __name__ == "__main__":
    main()
