"""Fault suite: does a live ``retina up`` recover from its own faults, losing and duplicating nothing?

Starts ``retina up`` (2 workers) on real footage — looping files plus cameras served by a real RTSP
server — then injects each fault ``--repeats`` times and measures:

- ``worker``, ``scheduler``, ``incidents``, ``search``, ``nats``: ``kill -9`` of that process; the
  supervisor restarts it. Recovery = until the cluster does its job again: every camera analysed
  (worker, scheduler), new incident events stored (incidents, nats), the search service answering.
- ``rtsp-kill``: the RTSP server is killed and started again 3 s later. Recovery = from its return
  until every RTSP camera is analysed again.
- ``rtsp-freeze``: the RTSP server is frozen (SIGSTOP) for 8 s, then resumed. Recovery = from the
  resume until every RTSP camera is analysed again.
- ``disk-full``: the incident store's disk (a 256 MB tmpfs holding its database and media) is
  filled to the last byte for 10 s, then freed. Recovery = from the freeing until new incident
  events are stored again. (Needs root for ``mount``; skipped with the reason otherwise.)

At the end it lets the outboxes drain and prints, per fault, recovery p50/max, and for the whole
run incidents and feature records accepted by the workers vs stored, lost and duplicated.
"Accepted" incident events are those the workers logged as accepted into their outboxes; "lost" are
accepted events the store never recorded; "duplicated" are messages JetStream holds twice plus
events of one incident stored twice at one revision (a continuation after a failover re-using a
revision). Feature records are counted from the FEATURES stream per track. Usage:

    python benchmarks/faults.py --video ../shared/videos/intersection.mp4 \\
        --model ../shared/models/yolov8n_coco_int8.onnx --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import nats
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from retina.services.core import bus, service_auth
from retina.services.core.ports import ClusterPorts, free_port
from retina.services.core.processes import wait_for_port
from retina.v1 import scheduler_pb2, scheduler_pb2_grpc, worker_pb2, worker_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
DEBIAN_PYTHON = "/usr/bin/python3"
FAULTS = ["worker", "scheduler", "incidents", "search", "nats", "rtsp-kill", "rtsp-freeze", "disk-full"]
RECOVERY_GOAL_SECONDS = 10.0
WHOLE_FRAME = [[0, 0], [1, 0], [1, 1], [0, 1]]


def poll(condition: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``condition`` holds (errors count as false); None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if condition():
                return time.monotonic() - started
        except (grpc.RpcError, OSError, sqlite3.Error):
            pass
        time.sleep(0.2)
    return None


class FaultBench:
    """A live ``retina up`` with files and RTSP cameras, and the means to hurt it and watch it heal."""

    def __init__(self, work: Path, video: Path, model: Path, files: int, rtsp: int, workers: int = 2):
        self.work = work
        self.video, self.model = video, model
        self.workers = workers
        free = ClusterPorts.free()
        self.ports = ClusterPorts(
            **{f.name: getattr(free, f.name) for f in free.single_fields()}
        ).for_workers(workers)
        self.rtsp_port = free_port()
        self.rtsp_cameras = [f"rtsp-{i}" for i in range(rtsp)]
        self.file_cameras = [f"file-{i}" for i in range(files)]
        self.store_dir = work / "var" / "incidents"
        self.db = self.store_dir / "incidents.sqlite"
        self.up: subprocess.Popen | None = None
        self.rtsp: subprocess.Popen | None = None

    # -- cluster ---------------------------------------------------------------------------------
    def camera(self, camera_id: str) -> dict:
        """A camera's entry: the RTSP server's mount of that name for ``rtsp-`` ids, else the looping
        file; illegal_parking over the whole frame with a 3 s dwell (the kerb car opens one at once)."""
        parking = [{"name": "illegal_parking", "zones": [{"name": "all", "polygon": WHOLE_FRAME}],
                    "params": {"dwell_seconds": 3, "update_interval_seconds": 2}}]  # fmt: skip
        if camera_id.startswith("rtsp-"):
            return {
                "id": camera_id,
                "url": f"rtsp://127.0.0.1:{self.rtsp_port}/{camera_id}",
                "algorithms": parking,
            }
        return {"id": camera_id, "url": str(self.video), "loop": True, "algorithms": parking}

    def config(self) -> dict:
        """The ``retina up`` configuration of :attr:`all_cameras`."""
        return {
            "detector": {"model": str(self.model)},
            "ingest": {"stall_seconds": 4, "open_timeout_seconds": 4, "backoff_initial_seconds": 0.5,
                       "backoff_max_seconds": 2},
            "scheduler": {"heartbeat_seconds": 1, "lease_seconds": 4},
            "worker": {"capacity_fps": 40},
            "nats": {"url": f"nats://127.0.0.1:{self.ports.nats}"},
            "cameras": [self.camera(c) for c in self.all_cameras],
        }  # fmt: skip

    def write_config(self) -> Path:
        path = self.work / "cameras.yaml"
        path.write_text(yaml.safe_dump(self.config()))
        return path

    def start(self) -> None:
        self.start_rtsp()
        config = self.write_config()
        flags = [
            a
            for f in ClusterPorts.single_fields()
            for a in (f.metadata["flag"], str(getattr(self.ports, f.name)))
        ]
        self.up = subprocess.Popen(
            [sys.executable, "-m", "retina.services.cli", "up", "--config", str(config), "--data-dir",
             str(self.work / "var"), "--workers", str(self.workers), *flags],
            stdout=subprocess.PIPE, stderr=(self.work / "up.log").open("wb"), text=True,
            start_new_session=True,
        )  # fmt: skip
        line = self.up.stdout.readline()
        if "retina is up" not in line:
            raise SystemExit(f"retina up did not start: {line} (see {self.work / 'up.log'})")
        if poll(lambda: self.analysed() == set(self.all_cameras), 120) is None:
            raise SystemExit(f"cameras not all analysed: {self.analysed()} (see {self.work / 'var/logs'})")

    @property
    def operator_token(self) -> str:
        """What the benchmark calls the cluster with (``retina up`` made it)."""
        return service_auth.read_token(self.work / "var" / "secrets" / "operator.token")

    @property
    def all_cameras(self) -> list[str]:
        return self.file_cameras + self.rtsp_cameras

    def stop(self) -> None:
        if self.up is not None and self.up.poll() is None:
            self.up.send_signal(signal.SIGTERM)
            self.up.wait(120)
        if self.rtsp is not None:
            self.rtsp.kill()
            self.rtsp.wait()

    def start_rtsp(self) -> None:
        mounts = [f"/{c}={self.video}" for c in self.rtsp_cameras]
        self.rtsp = subprocess.Popen(
            [DEBIAN_PYTHON, str(REPO / "tests" / "rtsp_server.py"), str(self.rtsp_port), *mounts],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        if "READY" not in self.rtsp.stdout.readline():
            raise SystemExit("the RTSP server did not start (Debian's gir1.2-gst-rtsp-server-1.0 missing?)")
        wait_for_port(self.rtsp_port, 10)

    # -- observations ----------------------------------------------------------------------------
    def frames(self) -> dict[str, int]:
        """Frames analysed per camera, from the live workers themselves."""
        out: dict[str, int] = {}
        for index in range(self.workers):
            with service_auth.channel(
                f"127.0.0.1:{self.ports.worker(index)[0]}", self.operator_token
            ) as channel:
                reply = worker_pb2_grpc.WorkerServiceStub(channel).GetStatus(
                    worker_pb2.GetStatusRequest(), timeout=3
                )
            out.update({c.camera_id: c.frames_analysed for c in reply.cameras})
        return out

    def analysed(self) -> set[str]:
        return {camera for camera, n in self.frames().items() if n > 0}

    def progressing(self, cameras: list[str], since: dict[str, int]) -> Callable[[], bool]:
        """True once every camera has analysed new frames (a restarted worker counts from 0)."""

        def check() -> bool:
            now = self.frames()
            return all(c in now and now[c] != since.get(c) and now[c] > 0 for c in cameras)

        return check

    def stored_events(self) -> int:
        with sqlite3.connect(self.db) as conn:
            return conn.execute("SELECT COUNT(*) FROM incident_events").fetchone()[0]

    def serving(self, port: int) -> bool:
        with service_auth.channel(f"127.0.0.1:{port}", None) as channel:  # health: open to anyone
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def all_placed(self) -> bool:
        with service_auth.channel(f"127.0.0.1:{self.ports.scheduler_grpc}", self.operator_token) as channel:
            reply = scheduler_pb2_grpc.SchedulerServiceStub(channel).GetClusterStatus(
                scheduler_pb2.GetClusterStatusRequest(), timeout=3
            )
        return {a.camera_id for a in reply.assignments} == set(self.all_cameras) and not reply.unplaced

    def pid(self, pattern: str) -> int:
        found = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split()
        if not found:
            raise RuntimeError(f"no process matches {pattern!r}")
        return int(found[0])

    # -- faults ----------------------------------------------------------------------------------
    def inject(self, fault: str, attempt: int) -> float | None:
        """Inject one fault; return the recovery time in seconds (None: not recovered in 90 s)."""
        var = str(self.work / "var")
        if fault == "worker":
            name = f"worker-{attempt % 2 + 1}"
            since = self.frames()
            os.kill(self.pid(f"--data-dir {var}/{name} "), signal.SIGKILL)
            started = time.monotonic()
            time.sleep(0.5)
            return self._until(self.progressing(self.all_cameras, since), started)
        if fault == "scheduler":
            os.kill(self.pid(f"scheduler serve --config .* --data-dir {var}/scheduler"), signal.SIGKILL)
            started = time.monotonic()
            time.sleep(0.5)
            return self._until(self.all_placed, started)
        if fault in ("incidents", "nats"):
            pattern = (f"incidents serve --data-dir {var}/incidents" if fault == "incidents"
                       else f"nats-server -a 127.0.0.1 -p {self.ports.nats} ")  # fmt: skip
            os.kill(self.pid(pattern), signal.SIGKILL)
            started = time.monotonic()
            time.sleep(0.5)
            before = self.stored_events()
            return self._until(lambda: self.stored_events() > before, started)
        if fault == "search":
            os.kill(self.pid(f"search serve --config .* --data-dir {var}/search"), signal.SIGKILL)
            started = time.monotonic()
            time.sleep(0.5)
            return self._until(lambda: self.serving(self.ports.search_grpc), started)
        if fault == "rtsp-kill":
            self.rtsp.kill()
            self.rtsp.wait()
            time.sleep(3)
            since = self.frames()
            self.start_rtsp()
            return self._until(self.progressing(self.rtsp_cameras, since), time.monotonic())
        if fault == "rtsp-freeze":
            self.rtsp.send_signal(signal.SIGSTOP)
            time.sleep(8)
            since = self.frames()
            self.rtsp.send_signal(signal.SIGCONT)
            return self._until(self.progressing(self.rtsp_cameras, since), time.monotonic())
        if fault == "disk-full":
            return self._disk_full()
        raise ValueError(f"unknown fault {fault!r}")

    def _until(self, condition: Callable[[], bool], started: float) -> float | None:
        waited = poll(condition, 90)
        return None if waited is None else time.monotonic() - started

    def mount_store_tmpfs(self) -> str | None:
        """Put the incident store's data folder (database and media) on a 256 MB tmpfs; the reason
        when that is impossible."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(self.store_dir)],
                              capture_output=True, text=True)  # fmt: skip
        return None if done.returncode == 0 else (done.stderr.strip() or "mount failed")

    def _disk_full(self) -> float | None:
        filler = self.store_dir / "filler.bin"
        with filler.open("wb") as f, contextlib.suppress(OSError):  # fill to the last byte
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        time.sleep(10)
        before = self.stored_events()
        filler.unlink()
        return self._until(lambda: self.stored_events() > before, time.monotonic())

    # -- accounting ------------------------------------------------------------------------------
    def accepted_incident_events(self) -> list[str]:
        ids = []
        for log in (self.work / "var" / "logs").glob("worker-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                record = json.loads(line) if line.startswith("{") else {}
                if record.get("logger") == "retina.services.worker.service" and record.get(
                    "msg", ""
                ).startswith("incident "):
                    ids.append(record["msg_id"])
        return ids

    def stream_ids(self, stream: str) -> list[str]:
        async def read() -> list[str]:
            url, token = f"nats://127.0.0.1:{self.ports.nats}", self.operator_token
            nc = await nats.connect(url, user="operator", password=token)
            js = nc.jetstream()
            info = await js.stream_info(stream)
            ids = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(stream, seq)
                except nats.js.errors.NotFoundError:
                    continue
                ids.append((msg.headers or {}).get("Nats-Msg-Id", ""))
            await nc.close()
            return ids

        return asyncio.run(read())

    def account(self) -> dict:
        """Accepted vs stored, lost and duplicated, once the outboxes drained and the store caught up."""
        accepted = self.accepted_incident_events()

        def stored_ids() -> set[str]:
            with sqlite3.connect(self.db) as conn:
                return {r[0] for r in conn.execute("SELECT msg_id FROM incident_events")}

        poll(lambda: set(accepted) <= stored_ids(), 90)
        stored = stored_ids()
        incident_stream = self.stream_ids(bus.INCIDENT_STREAM)
        with sqlite3.connect(self.db) as conn:
            # Two events of one incident at one revision: a continuation that re-used a revision.
            same_revision = conn.execute(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM incident_events"
                " GROUP BY incident_id, revision HAVING n > 1)"
            ).fetchone()[0]
        feature_stream = self.stream_ids(bus.FEATURE_STREAM)
        latest: dict[str, int] = {}
        for msg_id in feature_stream:
            key, _, revision = msg_id.rpartition(":")
            latest[key] = max(latest.get(key, -1), int(revision))
        search_db = self.work / "var" / "search" / "features.sqlite"

        def features_stored() -> dict[str, int]:
            with sqlite3.connect(search_db) as conn:
                return dict(conn.execute("SELECT key, revision FROM tracks"))

        poll(lambda: all(features_stored().get(k, -1) >= r for k, r in latest.items()), 90)
        tracks = features_stored()
        return {
            "incident_events_accepted": len(set(accepted)),
            "incident_events_stored": len(set(accepted) & stored),
            "incident_events_lost": len(set(accepted) - stored),
            "incident_events_duplicated": same_revision
            + sum(n - 1 for n in Counter(incident_stream).values() if n > 1),
            "feature_tracks_accepted": len(latest),
            "feature_tracks_stored": sum(1 for k, r in latest.items() if tracks.get(k, -1) >= r),
            "feature_tracks_lost": sum(1 for k, r in latest.items() if tracks.get(k, -1) < r),
            "feature_records_duplicated": sum(n - 1 for n in Counter(feature_stream).values() if n > 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path, default=REPO.parent / "shared" / "videos" / "intersection.mp4")
    parser.add_argument(
        "--model", type=Path, default=REPO.parent / "shared" / "models" / "yolov8n_coco_int8.onnx"
    )
    parser.add_argument("--repeats", type=int, default=3, help="times each fault is injected")
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help=f"comma-separated, from {','.join(FAULTS)}"
    )
    parser.add_argument("--file-cameras", type=int, default=3)
    parser.add_argument("--rtsp-cameras", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny run for the test suite: worker and nats, once"
    )
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.faults, args.file_cameras, args.rtsp_cameras = 1, "worker,nats", 2, 1
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"--faults: unknown {sorted(unknown)}; choose from {FAULTS}")

    work = Path(tempfile.mkdtemp(prefix="retina-faults-"))
    bench = FaultBench(work, args.video.resolve(), args.model.resolve(), args.file_cameras, args.rtsp_cameras)
    skipped: dict[str, str] = {}
    if "disk-full" in faults:
        reason = bench.mount_store_tmpfs()
        if reason:
            skipped["disk-full"] = reason
            faults.remove("disk-full")
    results: dict[str, list[float | None]] = {}
    started = time.monotonic()
    try:
        bench.start()
        for fault in faults:
            for attempt in range(args.repeats):
                results.setdefault(fault, []).append(bench.inject(fault, attempt))
                time.sleep(3)  # let the cluster settle before the next fault
        totals = bench.account()
    finally:
        bench.stop()
        if "disk-full" in faults:
            subprocess.run(["umount", "-l", str(bench.store_dir)], check=False)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "cameras": {"files": args.file_cameras, "rtsp": args.rtsp_cameras},
        "repeats": args.repeats,
        "recovery_seconds": results,
        "skipped": skipped,
        "totals": totals,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"fault suite on {report['machine']}: {args.file_cameras} file + {args.rtsp_cameras} RTSP cameras, "
          f"2 workers, {args.repeats} repeat(s) each, {report['wall_seconds']} s")  # fmt: skip
    print(f"{'fault':<13} {'recovered':>9} {'p50 s':>7} {'max s':>7}")
    for fault, times in results.items():
        ok = [t for t in times if t is not None]
        p50 = f"{statistics.median(ok):7.1f}" if ok else "      -"
        worst = f"{max(ok):7.1f}" if ok and len(ok) == len(times) else "  never"
        print(f"{fault:<13} {len(ok):>4}/{len(times):<4} {p50} {worst}")
    for fault, reason in skipped.items():
        print(f"{fault:<13} skipped: {reason}")
    for key, value in totals.items():
        print(f"{key:<28} {value}")
    times = [t for ts in results.values() for t in ts]
    worst = max((t for t in times if t is not None), default=0.0)
    recovered = all(t is not None for t in times)
    print(f"worst recovery / 10 s goal: {worst:.1f} / 10.0 = {worst / RECOVERY_GOAL_SECONDS:.2f}x"
          + ("" if recovered else " (some fault never recovered)"))  # fmt: skip
    lost = totals["incident_events_lost"] + totals["feature_tracks_lost"]
    dup = totals["incident_events_duplicated"] + totals["feature_records_duplicated"]
    passed = lost == 0 and dup == 0 and recovered and worst < RECOVERY_GOAL_SECONDS
    print(f"verdict: {'PASS' if passed else 'FAIL'} (lost {lost}, duplicated {dup}; goal: "
          f"every recovery < 10 s, 0 lost, 0 duplicated)")  # fmt: skip


if __name__ == "__main__":
    main()
