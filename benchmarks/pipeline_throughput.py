"""How many cameras does this machine analyse in real time? retina's pipeline vs a naive baseline.

retina: N cameras in one worker (one decode thread each, sampled to ``analysis_fps`` by timestamp,
one shared detector, ByteTrack and illegal_parking per camera), run flat out over a file.
Baseline, measured in the same run: one Ultralytics ``model.track(source, stream=True)`` loop,
which decodes and detects every frame.

"Cameras in real time" = seconds of video analysed per second of wall time (a camera produces one
second of video per second).

Incident burst: the same worker (batches of up to 8) with the worker's own incident sink
(:class:`OutboxSink`: snapshot drawing, two JPEG encodes, an fsync'd SQLite outbox insert per event)
and, on cam-0, ``--burst`` incidents opening at once every ``--burst-every`` video-seconds. Frames
analysed per second without a burst, with one on the old path (the sink's work done on the analysis
thread, under the analysis lock, as the worker did before sinks) and on the new path
(``OutboxSink.deliver``: the work on the sink's delivery thread). Every event must reach the outbox.

Usage:

    python benchmarks/pipeline_throughput.py --video ../shared/videos/intersection.mp4 \
        --model ../shared/models/yolov8n_coco_int8.onnx [--smoke]

``--mix`` replaces the burst tables with a camera mix (``still:<clip>`` is the clip's mostly still
street, :mod:`still_street`): the naive loop, retina with the motion gate off and on, and the cost
of decoding every frame, per model:

    python benchmarks/pipeline_throughput.py --mix still:intersection.mp4:20,intersection.mp4:10 \
        --videos ../shared/videos --model ../shared/models/yolo11n_coco_int8_320.onnx

``--smoke`` runs 2 cameras for 2 video-seconds each: it checks the benchmark works, its figures
mean little.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "False")

from still_street import cached_still_street  # benchmarks/ is the script's folder

from retina.algorithms.sdk import IncidentEvent, Snapshot
from retina.services.core.config import parse_config
from retina.services.core.outbox import Outbox
from retina.services.worker import pipeline
from retina.services.worker.detector import Detector
from retina.services.worker.ingest import CameraHealth, skips_nonref_frames
from retina.services.worker.pipeline import Analyzer
from retina.services.worker.sinks import OutboxSink

BURST_CAMERA = "cam-0"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]
KERB = [[0.0, 0.5], [0.3, 0.5], [0.3, 1.0], [0.0, 1.0]]  # intersection.mp4's lower-left kerb
LAST_HEALTH: dict[str, CameraHealth] = {}  # every camera's health at the end of the last run
# The last retina or baseline run's CPU seconds (every thread of this process): on a machine other
# work shares, video-seconds per CPU-second × cores is what an idle machine would reach at most.
LAST_CPU_SECONDS = [0.0]


@contextlib.contextmanager
def incident_bursts(size: int, every_seconds: float) -> Iterator[list[int]]:
    """While active, ``size`` incidents open at once on BURST_CAMERA every ``every_seconds`` of
    stream time, each a ``new`` event with a snapshot of the frame (as a rule emits them).
    Yields a one-item list: the number of events produced so far."""
    produced = [0]
    analyse = pipeline.CameraPipeline.analyse
    last: dict[int, float] = {}

    def with_bursts(self, frame, detections, *rest, **named):
        events, jobs = analyse(self, frame, detections, *rest, **named)
        if self.camera.id != BURST_CAMERA or frame.timestamp - last.get(id(self), -1e18) < every_seconds:
            return events, jobs
        last[id(self)] = frame.timestamp
        h, w = frame.image.shape[:2]
        for i in range(size):
            x1, y1 = (i % 5) / 5, (i // 5) / 5 * 0.8
            box = (x1 * w, y1 * h, (x1 + 0.15) * w, (y1 + 0.15) * h)
            zone = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
            events.append(
                IncidentEvent(
                    event="new",
                    incident_id=f"burst-{frame.timestamp:.3f}-{i}",
                    revision=0,
                    algorithm="illegal_parking",
                    algorithm_version="bench",
                    zone="all",
                    started_at=frame.timestamp - 60,
                    last_seen_at=frame.timestamp,
                    ended_at=None,
                    dwell_seconds=60.0,
                    bbox=(x1, y1, x1 + 0.15, y1 + 0.15),
                    confidence=0.8,
                    track_id=i,
                    snapshot=Snapshot(frame.image, box, zone, frame.timestamp),
                )
            )
        produced[0] += size
        return events, jobs

    pipeline.CameraPipeline.analyse = with_bursts
    try:
        yield produced
    finally:
        pipeline.CameraPipeline.analyse = analyse


def camera(index: int, video: Path, fps: float, kerb: bool = False) -> dict:
    """One benchmark camera: illegal_parking over the whole picture, or (``kerb``) over the
    intersection's lower-left kerb with the motion gate watching that zone only."""
    entry = {"id": f"cam-{index}", "url": str(video), "analysis_fps": fps, "loop": True}
    zone = {"name": "kerb", "polygon": KERB} if kerb else {"name": "all", "polygon": WHOLE}
    entry["algorithms"] = [{"name": "illegal_parking", "zones": [zone]}]
    if kerb:
        entry["motion"] = {"region": "zones"}
    return entry


def retina_throughput(
    video: Path | list[dict],
    model: Path,
    cameras: int,
    fps: float,
    seconds: float,
    max_batch: int = 8,
    max_wait_ms: float = 20,
    device: str = "cpu",
    on_events=None,
    gate: bool = False,
) -> tuple[float, float]:
    """(video-seconds analysed per wall-second, frames analysed per wall-second) of one worker
    running ``cameras`` copies of the clip (or the camera entries ``video`` lists).

    ``max_batch=1`` is one inference call per frame; larger batches frames of several cameras into
    one call (waiting at most ``max_wait_ms`` for them), as a worker's device lane does. ``gate``:
    the motion gate is on (its defaults, with each camera's own ``motion``).
    """
    entries = video if isinstance(video, list) else [camera(i, video, fps) for i in range(cameras)]
    config = parse_config(
        {
            "detector": {"model": str(model), "device": device, "half": device.startswith("cuda")},
            "motion": {"enabled": gate},
            "cameras": entries,
        }
    ).config
    detector = Detector(config.detector)
    detector.detect([__import__("numpy").zeros((480, 640, 3), dtype="uint8")])  # warm-up
    analyzer = Analyzer(
        detector,
        config.tracker,
        config.ingest,
        on_events=on_events or (lambda *_: None),
        on_status=lambda *_: None,
        realtime=False,
        retry_files=False,
        max_batch=max_batch,
        max_wait_seconds=max_wait_ms / 1000,
        motion=config.motion,
    )
    stop = threading.Event()
    loop = threading.Thread(target=analyzer.run, args=(stop,))
    loop.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    for entry in config.cameras:
        analyzer.assign(entry)
    target = seconds * fps
    while True:
        health = analyzer.health()
        if all(h.frames_analysed >= target for h in health.values()) or analyzer.all_finished():
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    LAST_CPU_SECONDS[0] = time.process_time() - cpu_started
    analysed = sum(h.frames_analysed for h in health.values())
    for entry in config.cameras:
        analyzer.release(entry.id)
    stop.set()
    loop.join()
    LAST_HEALTH.clear()
    LAST_HEALTH.update(health)
    return analysed / fps / wall, analysed / wall


@dataclass
class BurstRun:
    frames_per_second: float
    delivery_seconds: list[float]  # the analysis thread's time in each incident hand-off
    produced: int  # burst events the rules produced
    stored: int  # of those, in the outbox at the end
    dropped: int  # left in the sink at its (60 s) close deadline
    drain_seconds: float  # the sink's backlog after the last frame


def burst_throughput(common: tuple, device: str, burst: int, every: float, path: str | None) -> BurstRun:
    """One worker run with the worker's OutboxSink: ``path`` None (no burst), "old" (the sink's work
    on the analysis thread, as ``Worker._accept_events`` did) or "new" (``OutboxSink.deliver``)."""
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite")
        sink = OutboxSink(outbox, lambda: None, "retina-media", name=f"bench-{path}")

        def old_path(camera, events) -> None:
            for event in events:
                sink.write(camera, event)
            sink.flush()

        hand_off = old_path if path == "old" else sink.deliver
        delivery_seconds: list[float] = []

        def timed(camera, events) -> None:  # runs on the analysis thread, under the analysis lock
            started = time.perf_counter()
            hand_off(camera, events)
            delivery_seconds.append(time.perf_counter() - started)

        bursts = incident_bursts(burst, every) if path else contextlib.nullcontext([0])
        with bursts as produced:
            _, frames_per_second = retina_throughput(*common, max_batch=8, device=device, on_events=timed)
        started = time.perf_counter()
        dropped = sink.close(timeout=60)
        drain_seconds = time.perf_counter() - started
        stored = sum(1 for item in outbox.peek(1_000_000) if item.msg_id.startswith("burst-"))
        outbox.close()
    return BurstRun(frames_per_second, delivery_seconds, produced[0], stored, dropped, drain_seconds)


def baseline_throughput(video: Path, model: Path, seconds: float) -> float:
    """Video-seconds per wall-second of one ``model.track(stream=True)`` loop over every frame."""
    from ultralytics import YOLO

    with av.open(str(video)) as container:
        video_fps = float(container.streams.video[0].average_rate)
    yolo = YOLO(str(model), task="detect")
    frames_needed = int(seconds * video_fps)
    started = None
    frames = 0
    for _ in yolo.track(str(video), stream=True, conf=0.1, verbose=False, tracker="bytetrack.yaml"):
        if started is None:  # exclude model load and warm-up from the timing
            started, cpu_started = time.perf_counter(), time.process_time()
            continue
        frames += 1
        if frames >= frames_needed:
            break
    wall = time.perf_counter() - started
    LAST_CPU_SECONDS[0] = time.process_time() - cpu_started
    return frames / video_fps / wall


def parse_mix(spec: str, videos: Path, still_seconds: float) -> list[tuple[Path, int]]:
    """``intersection.mp4:4,still:sidewalk_shopfront.mp4:20`` → [(videos/intersection.mp4, 4), ...].
    ``still:`` is the clip's mostly still street (:func:`still_street.cached_still_street`,
    ``still_seconds`` long)."""
    mix = []
    for part in spec.split(","):
        still = part.startswith("still:")
        name, _, count = part.removeprefix("still:").partition(":")
        video = videos / name
        if still:
            video = cached_still_street(video, still_seconds)
        mix.append((video, int(count or 1)))
    return mix


@dataclass
class MixRun:
    cameras_realtime: float
    cameras_per_cores: float  # video-seconds per CPU-second × the machine's cores
    skipped: dict[str, float]  # clip → share of its cameras' analysed frames the detector skipped


def mix_throughput(
    mix: list[tuple[Path, int]], model: Path, fps: float, seconds: float, gate: bool
) -> MixRun:
    """One worker (batches of up to 8) on the mix: every clip's cameras looping over it."""
    entries, clip_of = [], {}
    for video, count in mix:
        for _ in range(count):
            index = len(entries)
            entries.append(camera(index, video, fps, kerb=video.name == "intersection.mp4"))
            clip_of[f"cam-{index}"] = video.name
    realtime, _ = retina_throughput(entries, model, len(entries), fps, seconds, gate=gate)
    video_seconds = sum(h.frames_analysed for h in LAST_HEALTH.values()) / fps
    per_cores = video_seconds / LAST_CPU_SECONDS[0] * (os.cpu_count() or 1)
    skipped: dict[str, list[int]] = {}
    for camera_id, health in LAST_HEALTH.items():
        totals = skipped.setdefault(clip_of[camera_id], [0, 0])
        totals[0] += health.frames_skipped
        totals[1] += health.frames_analysed
    skipped["all"] = [sum(t[0] for t in skipped.values()), sum(t[1] for t in skipped.values())]
    return MixRun(realtime, per_cores, {clip: s / max(1, n) for clip, (s, n) in skipped.items()})


def naive_mix(mix: list[tuple[Path, int]], model: Path, seconds: float) -> tuple[float, float]:
    """Cameras of the mix one naive ``model.track`` loop keeps up with (by wall time; by CPU time ×
    cores): each clip's cost per video-second, weighted by its share of the cameras."""
    wall = cpu = 0.0
    for video, count in mix:
        wall += count / baseline_throughput(video, model, seconds)
        cpu += count * LAST_CPU_SECONDS[0] / seconds
    cameras = sum(count for _, count in mix)
    return cameras / wall, cameras / cpu * (os.cpu_count() or 1)


def decode_ms(mix: list[tuple[Path, int]], seconds: float, analysis_fps: float) -> float:
    """CPU milliseconds to decode one camera-second of the mix, as a worker decodes it (FFmpeg's
    threads, non-reference frames skipped where the worker skips them), converting nothing: the
    part of the work that decoding every frame costs whatever samples them. Video time is read from
    the frames' timestamps, so skipped frames still count as the video they cover."""
    ingest = parse_config({"cameras": []}).config.ingest
    total = 0.0
    for video, count in mix:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if skips_nonref_frames(ingest, analysis_fps, stream):
                stream.codec_context.skip_frame = "NONREF"
            interval = 1.0 / float(stream.average_rate or 25)
            started, first, last = time.process_time(), None, None
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                first = frame.time if first is None else first
                last = frame.time
                if last - first >= seconds:
                    break
            cpu = time.process_time() - started
        total += count * cpu / ((last - first) + interval if first is not None else interval)
    return total / sum(count for _, count in mix) * 1000


def detector_ms(model: Path, video: Path, calls: int) -> tuple[float, str]:
    """Median milliseconds of one detector call on a frame of ``video``, and the input it ran at
    (Ultralytics letterboxes a .pt model's frame to the nearest stride multiple, a fixed-shape
    ONNX model's to its square)."""
    with av.open(str(video)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="bgr24")
    detector = Detector(parse_config({"detector": {"model": str(model)}}).config.detector)
    detector.detect([image])
    predictor, shapes = detector.model.predictor, []
    preprocess = predictor.preprocess

    def recording(images):
        tensor = preprocess(images)
        shapes.append(tuple(tensor.shape[2:]))
        return tensor

    predictor.preprocess = recording
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        detector.detect([image])
        timings.append(time.perf_counter() - started)
    height, width = shapes[-1]
    return sorted(timings)[calls // 2] * 1000, f"{image.shape[1]}x{image.shape[0]} -> {width}x{height}"


def report_mix(args: argparse.Namespace) -> None:
    """The camera-mix table: naive loop, retina without and with the motion gate, per model."""
    mix = parse_mix(args.mix, args.videos, args.still_seconds)
    total = sum(count for _, count in mix)
    print(f"mix: {total} cameras @ {args.analysis_fps:g} fps, {args.seconds:g} video-s each, looping: ")
    print("  " + ", ".join(f"{count} x {video.name}" for video, count in mix))
    print("  illegal_parking on the whole picture; intersection cameras: the kerb zone, gate region 'zones'")
    print(f"{'detector (one call, one frame)':40} {'frame -> input':22} {'ms':>8}")
    for model in [args.model, *args.also_model, *args.latency_model]:
        for video in sorted(
            {video for video, _ in mix if video.name in ("intersection.mp4", "road_bus_stop.mp4")}
        ):
            ms, size = detector_ms(model, video, 3 if args.smoke else 15)
            print(f"{model.name:40} {size:22} {ms:8.1f}")
    print(
        f"{'model':28} {'pipeline':32} {'cameras in real time':>20} {'by CPU time x cores':>20}"
        f" {'detector skipped':>16}"
    )
    decoding = decode_ms(mix, args.seconds, args.analysis_fps)
    for model in [args.model, *args.also_model]:
        naive, naive_cpu = naive_mix(mix, model, args.baseline_seconds)
        off = mix_throughput(mix, model, args.analysis_fps, args.seconds, gate=False)
        on = mix_throughput(mix, model, args.analysis_fps, args.seconds, gate=True)
        rows = [
            ("naive model.track, every frame", naive, naive_cpu, "-"),
            ("retina, motion gate off", off.cameras_realtime, off.cameras_per_cores, "0%"),
            ("retina, motion gate on", on.cameras_realtime, on.cameras_per_cores, f"{on.skipped['all']:.0%}"),
        ]
        for label, wall, cpu, skipped in rows:
            print(f"{model.name:28} {label:32} {wall:20.2f} {cpu:20.2f} {skipped:>16}")
        ratios = (on.cameras_realtime / naive, on.cameras_per_cores / naive_cpu)
        print(f"ratio gate on / naive ({model.name}): {ratios[0]:.1f}x; by CPU time {ratios[1]:.1f}x")
        ratios = (on.cameras_realtime / off.cameras_realtime, on.cameras_per_cores / off.cameras_per_cores)
        print(f"ratio gate on / gate off ({model.name}): {ratios[0]:.2f}x; by CPU time {ratios[1]:.2f}x")
        naive_ms = 1000 * (os.cpu_count() or 1) / naive_cpu  # CPU ms per camera-second
        print(
            f"decoding every frame ({model.name}): {decoding:.1f} CPU-ms per camera-second, the naive loop"
            f" {naive_ms:.0f}: a pipeline that decodes every frame is at most {naive_ms / decoding:.1f}x"
            " the naive loop"
        )
        shares = ", ".join(f"{clip} {share:.0%}" for clip, share in on.skipped.items() if clip != "all")
        print(f"frames the gate skipped by clip ({model.name}): {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, help="the clip of the burst tables (required without --mix)")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--analysis-fps", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="video seconds per camera")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda:0 (half precision with a .pt model)")
    parser.add_argument("--burst", type=int, default=20, help="incidents opening at once on cam-0")
    parser.add_argument("--burst-every", type=float, default=1.0, help="video-seconds between bursts")
    parser.add_argument("--repeat", type=int, default=3, help="burst runs per path (median)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 2 cameras, 2 video-seconds")
    parser.add_argument(
        "--mix",
        help="instead of the burst tables: a camera mix from --videos, e.g."
        " still:sidewalk_shopfront.mp4:20,intersection.mp4:4 (naive loop, gate off, gate on); still:"
        " the clip's mostly still street (benchmarks/still_street.py)",
    )
    parser.add_argument("--still-seconds", type=float, default=60.0, help="--mix: length of still: clips")
    parser.add_argument("--videos", type=Path, default=Path("../shared/videos"), help="folder of --mix clips")
    parser.add_argument("--also-model", type=Path, action="append", default=[], help="more --mix models")
    parser.add_argument(
        "--latency-model", type=Path, action="append", default=[], help="--mix: models timed per call only"
    )
    parser.add_argument("--baseline-seconds", type=float, default=6.0, help="--mix: naive video-s per clip")
    args = parser.parse_args()
    if args.video is None and not args.mix:
        parser.error("--video is required (or --mix)")
    if args.smoke:
        args.cameras, args.seconds, args.repeat, args.baseline_seconds = 2, 2.0, 1, 1.0
        args.still_seconds = 4.0
    logging.basicConfig(level=logging.ERROR)
    processor = platform.processor() or "cpu"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {processor}; device {args.device}")
    if args.mix:
        report_mix(args)
        return
    print(f"video: {args.video.name}; model: {args.model.name}")
    baseline = baseline_throughput(args.video, args.model, args.seconds / 2)
    common = (args.video, args.model, args.cameras, args.analysis_fps, args.seconds)
    per_frame, _ = retina_throughput(*common, max_batch=1, device=args.device)
    batched, _ = retina_throughput(*common, max_batch=8, device=args.device)
    burst = (args.burst, args.burst_every)
    runs: dict[str | None, list[BurstRun]] = {None: [], "old": [], "new": []}
    for _ in range(args.repeat):  # interleaved, so a slow spell of a shared machine hits every path
        for path in runs:
            runs[path].append(burst_throughput(common, args.device, *burst, path))
    median = {
        path: sorted(found, key=lambda r: r.frames_per_second)[len(found) // 2]
        for path, found in runs.items()
    }
    print(
        f"retina: one worker, {args.cameras} cameras @ {args.analysis_fps:g} fps, ByteTrack + illegal_parking"
    )
    print(f"{'pipeline':52} {'cameras in real time':>20}")
    print(f"{'baseline: model.track(stream=True), every frame':52} {baseline:20.2f}")
    print(f"{'retina, one inference call per frame':52} {per_frame:20.2f}")
    print(f"{'retina, cross-stream batches of up to 8 frames':52} {batched:20.2f}")
    print(f"ratio retina (batched) / baseline: {batched / baseline:.1f}x")
    print(f"ratio batched / one call per frame: {batched / per_frame:.2f}x")
    print(
        f"incident burst: {args.burst} incidents opening at once on {BURST_CAMERA} every "
        f"{args.burst_every:g} video-s; worker OutboxSink (snapshot, 2 JPEGs, fsync'd outbox insert)"
    )
    title = f"pipeline (batches of up to 8), median of {args.repeat}"
    print(f"{title:52} {'frames analysed/s':>20} {'analysis thread in hand-off, total / longest':>46}")
    labels = {
        None: "no burst",
        "old": "burst, old path: sink work on the analysis thread",
        "new": "burst, new path: OutboxSink.deliver, delivery thread",
    }
    for path, run in median.items():
        total, longest = sum(run.delivery_seconds), max(run.delivery_seconds, default=0.0)
        handoff = f"{total * 1000:.0f} ms / {longest * 1000:.1f} ms"
        print(f"{labels[path]:52} {run.frames_per_second:20.1f} {handoff:>46}")
    for path in ("old", "new"):
        run = median[path]
        print(
            f"{path} path: {run.stored}/{run.produced} burst events in the outbox, {run.dropped} dropped,"
            f" sink drained {run.drain_seconds:.2f} s after the last frame"
        )
    quiet = median[None].frames_per_second
    print(
        f"ratio burst / no burst, new path: {median['new'].frames_per_second / quiet:.2f}x;"
        f" old path: {median['old'].frames_per_second / quiet:.2f}x"
    )


if __name__ == "__main__":
    main()
