"""Alert latency on a live ``retina up``: from the frame in which a stay crosses its dwell to the
incident (a) on the INCIDENTS stream and (b) readable from the incident store.

Starts ``retina up`` (real nats-server, incident store, search, scheduler, ``--workers`` workers;
:class:`faults.FaultBench` starts it and the RTSP server) with illegal_parking over the whole frame
and a 3 s dwell, so incidents open regularly (intersection.mp4's kerb car stands from the first
frame; cars waiting at the lights and the parked row open more). Three phases on the same cluster,
each registering its cameras in the registry (the others are disabled):

- ``baseline``: 1 camera on a looping file, the cluster otherwise idle;
- ``load``: ``--cameras`` cameras, ``--rtsp`` of them on a real RTSP server, the rest looping files
  (``--still`` of those on the clip's mostly still street, :mod:`still_street`: the realistic mix of
  city cameras). They are registered at once, so every camera's first stays open together: the first
  ``--settle-seconds`` are reported apart (``load start``), the ``--seconds`` after them are the load;
- ``burst``: ``--burst-cameras`` fresh cameras on the same file, registered at once. Each opens
  about 4 incidents in one frame (the kerb car and the parked row at the top stand from the first
  frame), and the cameras start within a second of each other: 5 cameras make a burst of about 20
  incidents opening in the same second, on one worker with ``--workers 1``. The burst row counts the
  incidents whose dwell frames fall in the busiest 1 s.

The dwell-crossing frame time is the ``new`` event's ``last_seen_at``: the rule opens the incident in
the frame at which the dwell has passed and stamps it with that frame's time (a file's frames are
paced to the wall clock and stamped when due; an RTSP stream's timestamps are mapped onto it). A
subscriber in this process (an ordered JetStream consumer: it gets a message once the stream stored
it) records when each ``new`` event arrives (a); from then it polls ``GetIncident`` by id every
10 ms until the store answers (b). Everything runs on one machine, so the clocks are the same.
Prints p50/p99/max of both per phase, the ratio of the load and burst p99 to the 1 s target, and
where the time goes: frame -> the worker's outbox (analysis, from the worker's ``incident new`` log
line) against the rest (publishing to JetStream, the store's consumer). Usage:

    python benchmarks/alert_latency.py --video ../shared/videos/intersection.mp4 \\
        --model ../shared/models/yolo11n_coco_int8_320.onnx --cameras 30 --still 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av
import grpc
import nats
from faults import FaultBench, poll  # benchmarks/ is the script's folder
from nats.js.api import DeliverPolicy
from still_street import cached_still_street

from retina.services.cli.clients import import_cameras
from retina.services.core import bus, service_auth
from retina.services.core.config import CameraConfig
from retina.v1 import incidents_pb2, incidents_pb2_grpc

TARGET_SECONDS = 1.0
STORE_POLL_SECONDS = 0.01
STORE_GIVE_UP_SECONDS = 30.0
ANALYSIS_FPS = 2.0  # the cameras' default
LATE_GRACE_SECONDS = 3.0  # after the last phase: 3x the target, for the events of the last frames


@dataclass
class Sample:
    """One ``new`` incident event: its dwell frame and when it reached the stream and the store."""

    camera_id: str
    incident_id: str
    frame_at: float  # epoch seconds: the frame in which the dwell was crossed
    on_stream: float
    in_store: float | None = None


class Recorder:
    """Watches the INCIDENTS stream and the incident store from a thread of its own."""

    def __init__(self, nats_url: str, store_address: str, token: str):
        self.nats_url, self.store_address, self.token = nats_url, store_address, token
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise SystemExit(f"could not subscribe to {bus.INCIDENT_STREAM}: {self.errors}")

    def stop(self) -> None:
        """Stop once every sample seen so far is in the store (or given up on)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STORE_GIVE_UP_SECONDS + 10)

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            nc = await nats.connect(self.nats_url, user="operator", password=self.token)
        except Exception as exc:
            self.errors.append(str(exc))
            return
        channel = service_auth.aio_channel(self.store_address, self.token)
        store = incidents_pb2_grpc.IncidentServiceStub(channel)
        pending: set[asyncio.Task] = set()

        async def on_message(msg) -> None:
            received = time.time()
            event = json.loads(msg.data)
            if event.get("event") != "new":
                return
            frame_at = datetime.fromisoformat(event["last_seen_at"]).timestamp()
            sample = Sample(event["camera_id"], event["id"], frame_at, received)
            self.samples.append(sample)
            task = asyncio.create_task(self._until_stored(store, sample))
            pending.add(task)
            task.add_done_callback(pending.discard)

        sub = await nc.jetstream().subscribe(
            bus.INCIDENT_SUBJECTS, cb=on_message, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
        self._ready.set()
        await self._stop.wait()
        if pending:
            await asyncio.wait(pending, timeout=STORE_GIVE_UP_SECONDS + 5)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        await nc.close()
        await channel.close()

    async def _until_stored(self, store: incidents_pb2_grpc.IncidentServiceStub, sample: Sample) -> None:
        deadline = time.monotonic() + STORE_GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            try:
                await store.GetIncident(incidents_pb2.GetIncidentRequest(id=sample.incident_id), timeout=2)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    self.errors.append(f"GetIncident {sample.incident_id}: {exc.code().name}")
                await asyncio.sleep(STORE_POLL_SECONDS)
                continue
            sample.in_store = time.time()
            return


class LatencyBench(FaultBench):
    """The fault suite's live cluster, with the cameras of the phase being measured registered."""

    def __init__(
        self,
        work: Path,
        video: Path,
        model: Path,
        workers: int,
        cameras: int,
        rtsp: int,
        burst: int,
        still_video: Path | None = None,
        still: int = 0,
    ):
        super().__init__(work, video, model, files=cameras - rtsp, rtsp=rtsp, workers=workers)
        self.active: list[str] = self.file_cameras[:1]
        self.still_video = still_video  # the clip's mostly still street, watched by the last ``still`` files
        self.still_cameras = set(self.file_cameras[len(self.file_cameras) - still :]) if still else set()
        self.burst_cameras = [f"burst-{i}" for i in range(burst)]
        # Every camera placed: the scheduler's budget is not what is measured here.
        self.capacity_fps = ANALYSIS_FPS * max(cameras, burst) + 10

    @property
    def all_cameras(self) -> list[str]:
        return self.active

    def camera(self, camera_id: str) -> dict:
        entry = super().camera(camera_id)
        if camera_id in self.still_cameras and self.still_video is not None:
            entry["url"] = str(self.still_video)
        return entry

    def config(self) -> dict:
        config = super().config()
        config["worker"]["capacity_fps"] = self.capacity_fps
        with av.open(str(self.video)) as container:  # the decode cost of these cameras, not 1080p's
            stream = container.streams.video[0]
            cost = stream.width * stream.height * float(stream.average_rate or 25) / 1e6
        config["scheduler"]["camera_decode_cost"] = round(cost, 2)
        return config

    def in_outbox(self) -> dict[str, float]:
        """When each new incident went into its worker's outbox (epoch seconds; the worker's log line,
        written once the event was built, with its snapshot, and stored for publishing)."""
        out = {}
        for log in (self.work / "var" / "logs").glob("worker-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                record = json.loads(line) if line.startswith("{") else {}
                if record.get("msg") == "incident new":
                    out[record["incident_id"]] = datetime.fromisoformat(record["ts"]).timestamp()
        return out

    def register(self, cameras: list[str]) -> None:
        """Make ``cameras`` the registered ones (the others disabled); wait until each is analysed."""
        self.active = cameras
        entries = [CameraConfig.model_validate(self.camera(c)) for c in cameras]
        scheduler = f"127.0.0.1:{self.ports.scheduler_grpc}"
        import_cameras(scheduler, entries, disable_others=True, token=self.operator_token)
        if poll(lambda: set(cameras) <= self.analysed(), 120) is None:
            raise SystemExit(f"cameras not all analysed: {sorted(set(cameras) - self.analysed())}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def busiest_second(samples: list[Sample]) -> list[Sample]:
    """The samples whose dwell frames fall in the 1 s window holding the most of them."""
    ordered = sorted(samples, key=lambda s: s.frame_at)
    best: list[Sample] = []
    start = 0
    for end, sample in enumerate(ordered):
        while sample.frame_at - ordered[start].frame_at >= 1.0:
            start += 1
        if end + 1 - start > len(best):
            best = ordered[start : end + 1]
    return best


def summary(samples: list[Sample]) -> dict:
    """Latency figures (ms) to the stream and to the store."""
    stream = [(s.on_stream - s.frame_at) * 1000 for s in samples]
    store = [(s.in_store - s.frame_at) * 1000 for s in samples if s.in_store is not None]
    out: dict = {"incidents": len(samples), "not_stored": len(samples) - len(store)}
    for name, values in (("stream", stream), ("store", store)):
        for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            out[f"{name}_{label}_ms"] = round(percentile(values, q)) if values else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--video", type=Path, required=True, help="a clip with a vehicle standing (intersection.mp4)"
    )
    parser.add_argument("--model", type=Path, required=True, help="the detector (ONNX)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cameras", type=int, default=30, help="cameras of the load phase")
    parser.add_argument("--rtsp", type=int, default=1, help="of them on the RTSP server")
    parser.add_argument(
        "--still",
        type=int,
        default=0,
        help="of the load's file cameras, this many watch --video's mostly still street"
        " (benchmarks/still_street.py)",
    )
    parser.add_argument(
        "--burst-cameras", type=int, default=5, help="cameras of the burst phase (about 4 incidents each)"
    )
    parser.add_argument("--baseline-seconds", type=float, default=30)
    parser.add_argument(
        "--seconds", type=float, default=60, help="measured time of the load phase, after its start"
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=10,
        help="the load phase's start: from its cameras' registration (all at once) until its"
        " measured time begins; reported on a row of its own",
    )
    parser.add_argument("--burst-seconds", type=float, default=15)
    parser.add_argument("--json", action="store_true", help="also print one JSON object at the end")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny run for the tests: 3 cameras (1 RTSP, 1 still), burst of 2"
    )
    args = parser.parse_args()
    if args.smoke:
        args.cameras, args.rtsp, args.still, args.burst_cameras = 3, 1, 1, 2
        args.baseline_seconds, args.seconds, args.burst_seconds, args.settle_seconds = 6, 10, 7, 0
    files = args.cameras - args.rtsp
    if not 0 <= args.rtsp <= args.cameras or args.cameras < 1 or args.burst_cameras < 1:
        parser.error("need 1 <= --cameras, 0 <= --rtsp <= --cameras and 1 <= --burst-cameras")
    if args.still and not 0 < args.still < files:
        parser.error("--still: 0 up to the file cameras less one (the baseline watches the real clip)")

    work = Path(tempfile.mkdtemp(prefix="retina-latency-"))
    bench = LatencyBench(
        work,
        args.video.resolve(),
        args.model.resolve(),
        args.workers,
        args.cameras,
        args.rtsp,
        args.burst_cameras,
        cached_still_street(args.video.resolve(), 60 if not args.smoke else 8) if args.still else None,
        args.still,
    )
    load = bench.file_cameras + bench.rtsp_cameras
    phases = [
        ("baseline", bench.file_cameras[:1] or load[:1], args.baseline_seconds),
        ("load", load, args.seconds),
        ("burst", bench.burst_cameras, args.burst_seconds),
    ]
    bench.active = phases[0][1]
    started = time.monotonic()
    recorder: Recorder | None = None
    windows: dict[str, tuple[set[str], float, float]] = {}
    try:
        bench.start()
        recorder = Recorder(
            f"nats://127.0.0.1:{bench.ports.nats}",
            f"127.0.0.1:{bench.ports.incidents_grpc}",
            bench.operator_token,
        )
        recorder.start()
        for name, cameras, seconds in phases:
            since = time.time()
            if name != "baseline":  # the baseline camera is analysed already (bench.start waited)
                bench.register(cameras)
            if name == "load":  # every camera's first stays open at once: the start, apart
                time.sleep(args.settle_seconds)
                windows["load start"] = (set(cameras), since, time.time())
                since = time.time()
            time.sleep(seconds)
            windows[name] = (set(cameras), since, time.time())
        time.sleep(LATE_GRACE_SECONDS)  # events of the last frames reach the stream
    finally:
        if recorder is not None:
            recorder.stop()
        bench.stop()
    samples = {  # a phase's incidents: its cameras' dwell frames within its time
        name: [s for s in recorder.samples if s.camera_id in cameras and since <= s.frame_at < until]
        for name, (cameras, since, until) in windows.items()
    }
    burst = busiest_second(samples.get("burst", []))
    rows = {
        "baseline": summary(samples.get("baseline", [])),
        "load start": summary(samples.get("load start", [])),
        "load": summary(samples.get("load", [])),
        "burst": summary(burst),
    }
    still = f", {args.still} on a still street" if args.still else ""
    labels = {
        "baseline": "baseline: 1 camera",
        "load start": f"load start: {args.cameras} cameras registered, first {args.settle_seconds:g} s",
        "load": f"load: {args.cameras} cameras ({args.rtsp} RTSP{still}), next {args.seconds:g} s",
        "burst": f"burst: {args.burst_cameras} cameras, {len(burst)} opening within 1 s",
    }
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": args.model.name,
        "workers": args.workers,
        "rows": rows,
        "burst_cameras": args.burst_cameras,
        "errors": recorder.errors[:10],
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    print(
        f"alert latency on {report['machine']}: {args.model.name}, {args.workers} worker(s), "
        f"{report['wall_seconds']} s; from the dwell-crossing frame (the new event's last_seen_at)"
    )
    print("| phase | incidents | stream p50 ms | stream p99 ms | stream max ms | store p50 ms | store p99 ms "
          "| store max ms | not stored |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for key, row in rows.items():
        figures = [row[f"{n}_{q}_ms"] for n in ("stream", "store") for q in ("p50", "p99", "max")]
        cells = " | ".join("-" if f is None else str(f) for f in figures)
        print(f"| {labels[key]} | {row['incidents']} | {cells} | {row['not_stored']} |")
    for key in ("load", "burst"):
        ratios = [
            "-"
            if rows[key][f"{n}_p99_ms"] is None
            else f"{rows[key][f'{n}_p99_ms'] / 1000 / TARGET_SECONDS:.2f}x"
            for n in ("stream", "store")
        ]
        print(f"{key} p99 / 1 s target: stream {ratios[0]}, store {ratios[1]}")
    in_outbox = bench.in_outbox()
    measured = {name: samples.get(name, []) for name in ("baseline", "load start", "load")} | {"burst": burst}
    for key, phase in measured.items():  # where the time goes: before the outbox, or publishing
        lags = [(in_outbox[s.incident_id] - s.frame_at) * 1000 for s in phase if s.incident_id in in_outbox]
        if lags:
            p50, p99 = round(percentile(lags, 0.5)), round(percentile(lags, 0.99))
            rows[key].update(outbox_p50_ms=p50, outbox_p99_ms=p99)
            print(f"{key}: frame -> worker outbox p50 {p50} ms, p99 {p99} ms (the worker's log)")
    if recorder.errors:
        print(f"store errors ({len(recorder.errors)}): {recorder.errors[:3]}")
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
