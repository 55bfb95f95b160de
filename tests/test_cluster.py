"""The cluster with real parts: nats-server, GStreamer RTSP server, worker and incident store processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import nats
import pytest
import yaml

from retina.services.cli.clients import wait_until_serving
from retina.services.cli.cluster import ClusterPorts, LocalCluster
from retina.services.core import bus, service_auth
from retina.services.core.config import load_config
from retina.services.core.convert import camera_to_proto
from retina.services.core.ports import free_port
from retina.services.core.processes import start_python, stop_process
from retina.v1 import worker_pb2, worker_pb2_grpc
from tests.conftest import MODEL, footage, python_cli, wait_for

pytestmark = pytest.mark.slow

WHOLE_FRAME = [[0, 0], [1, 0], [1, 1], [0, 1]]
FAST_RETRY = {
    "stall_seconds": 4,
    "open_timeout_seconds": 4,
    "backoff_initial_seconds": 0.5,
    "backoff_max_seconds": 2,
}


def write_config(path: Path, cameras: list[dict], nats_url: str = "nats://127.0.0.1:4222") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "detector": {"model": str(MODEL)},
                "ingest": FAST_RETRY,
                "nats": {"url": nats_url},
                "cameras": cameras,
            }
        )
    )
    return path


def parking(zone=WHOLE_FRAME, **params) -> list[dict]:
    return [{"name": "illegal_parking", "zones": [{"name": "all", "polygon": zone}], "params": params}]


class StatusWatcher:
    """Collects camera status messages from NATS in a background thread."""

    def __init__(self, nats_url: str, operator_token: str):
        self.messages: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(nats_url, operator_token), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "status watcher could not connect to NATS"

    def _run(self, url: str, operator_token: str) -> None:
        async def main():
            nc = await nats.connect(url, user="operator", password=operator_token)

            async def on_msg(msg):
                self.messages.append(json.loads(msg.data))

            await nc.subscribe("retina.cameras.*.status", cb=on_msg)
            await nc.flush()
            self._ready.set()
            while True:
                await asyncio.sleep(0.2)

        self._loop.run_until_complete(main())

    def states(self, camera_id: str) -> list[str]:
        """The camera's states in order, repeated heartbeats collapsed."""
        out: list[str] = []
        for m in list(self.messages):
            if m["camera_id"] == camera_id and (not out or out[-1] != m["state"]):
                out.append(m["state"])
        return out


def worker_status(address: str, token: str) -> dict[str, worker_pb2.CameraStatus]:
    with service_auth.channel(address, token) as channel:
        reply = worker_pb2_grpc.WorkerServiceStub(channel).GetStatus(worker_pb2.GetStatusRequest(), timeout=5)
    return {c.camera_id: c for c in reply.cameras}


def state_of(status: worker_pb2.CameraStatus) -> str:
    return worker_pb2.CameraState.Name(status.state).removeprefix("CAMERA_STATE_").lower()


def test_rtsp_camera_goes_offline_and_recovers_without_worker_restart(
    tmp_path, secured_nats, service_credentials, rtsp_server_factory
):
    nats_server, operator = secured_nats, service_credentials.token("operator")
    rtsp = rtsp_server_factory({"cam1": footage("intersection.mp4")})
    rtsp.start()
    config = write_config(
        tmp_path / "cameras.yaml",
        [
            {"id": "cam-rtsp", "url": rtsp.url("cam1"), "algorithms": parking(dwell_seconds=60)},
            {"id": "cam-dead", "url": "rtsp://127.0.0.1:9/nothing", "algorithms": parking()},
        ],
        nats_server.url,
    )
    watcher = StatusWatcher(nats_server.url, operator)
    grpc_port = free_port()
    address = f"127.0.0.1:{grpc_port}"
    worker = start_python(
        ["worker", "--config", str(config), "--data-dir", str(tmp_path / "worker"),
         "--grpc-port", str(grpc_port), "--metrics-port", "0", "--worker-id", "w1",
         *service_credentials.flags("worker")],
        log_file=tmp_path / "worker.log",
    )  # fmt: skip
    try:
        wait_until_serving(address, 120, worker)
        with service_credentials.channel(address) as channel:  # as `retina assign` does
            stub = worker_pb2_grpc.WorkerServiceStub(channel)
            for camera in load_config(config).config.cameras:
                stub.AssignCamera(worker_pb2.AssignCameraRequest(camera=camera_to_proto(camera)), timeout=30)

        wait_for(
            lambda: worker_status(address, operator)["cam-rtsp"].frames_analysed >= 4,
            60,
            "RTSP frames analysed",
        )
        rtsp.kill()
        wait_for(
            lambda: state_of(worker_status(address, operator)["cam-rtsp"]) in ("offline", "stalled"),
            30,
            "camera down",
        )
        analysed_while_down = worker_status(address, operator)["cam-rtsp"].frames_analysed

        rtsp.start()
        wait_for(
            lambda: worker_status(address, operator)["cam-rtsp"].frames_analysed >= analysed_while_down + 4,
            60,
            "analysis to resume after the RTSP server came back",
        )
        status = worker_status(address, operator)
        assert state_of(status["cam-rtsp"]) == "online"
        assert status["cam-rtsp"].reconnects >= 1

        # A server that keeps the connection open but sends nothing: the camera is "stalled".
        seen_before = len(watcher.states("cam-rtsp"))
        os.kill(rtsp.process.pid, signal.SIGSTOP)
        try:
            wait_for(
                lambda: "stalled" in watcher.states("cam-rtsp")[seen_before:],
                30,
                "the camera to be reported stalled",
            )
        finally:
            os.kill(rtsp.process.pid, signal.SIGCONT)
        analysed_while_stalled = worker_status(address, operator)["cam-rtsp"].frames_analysed
        wait_for(
            lambda: (
                worker_status(address, operator)["cam-rtsp"].frames_analysed >= analysed_while_stalled + 4
            ),
            60,
            "analysis to resume after the stall",
        )
        status = worker_status(address, operator)
        assert worker.poll() is None, "the worker process must not restart"
        assert state_of(status["cam-dead"]) == "offline"
        assert "cannot open rtsp://127.0.0.1:9/nothing" in status["cam-dead"].reason

        states = watcher.states("cam-rtsp")
        online = states.index("online")
        down = next(i for i, s in enumerate(states) if i > online and s in ("offline", "stalled"))
        assert "online" in states[down:], f"status sequence on NATS: {states}"
    finally:
        assert stop_process(worker, "worker") == 0
    log = (tmp_path / "worker.log").read_text()
    assert '"camera_id": "cam-rtsp"' in log and "Traceback" not in log


def _stream_events(cluster: LocalCluster) -> list[tuple[str, dict]]:
    """Every message in the INCIDENTS stream: (Nats-Msg-Id, body)."""

    async def read():
        nc = await nats.connect(cluster.nats_url, user="operator", password=cluster.token("operator"))
        js = nc.jetstream()
        info = await js.stream_info(bus.INCIDENT_STREAM)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(bus.INCIDENT_STREAM, seq)
            out.append((msg.headers["Nats-Msg-Id"], json.loads(msg.data)))
        await nc.close()
        return out

    return asyncio.run(read())


def _accepted_msg_ids(worker_log: Path) -> list[str]:
    """Incident events the worker accepted (its structured log), as Nats-Msg-Ids."""
    ids = []
    for line in worker_log.read_text().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("logger") == "retina.services.worker.service" and record.get("msg", "").startswith(
            "incident "
        ):
            ids.append(record["msg_id"])
    return ids


def test_nats_restart_loses_and_duplicates_nothing(tmp_path):
    video = footage("intersection.mp4")
    config = write_config(
        tmp_path / "cameras.yaml",
        [{"id": "cam-loop", "url": str(video), "loop": True,
          "algorithms": parking(dwell_seconds=2, update_interval_seconds=1)}],
    )  # fmt: skip
    cluster = LocalCluster(config, tmp_path / "var", ClusterPorts.free())
    db = tmp_path / "var" / "incidents" / "incidents.sqlite"

    def stored_events() -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM incident_events").fetchone()[0]

    try:
        cluster.start(load_config(config).config.cameras)
        wait_for(lambda: stored_events() >= 3, 90, "incident events to reach the store")
        cluster.stop_nats()
        pending = []
        for _ in range(16):  # NATS stays down for about 8 s while the camera keeps producing
            pending.append(_pending(cluster))
            time.sleep(0.5)
        assert max(pending) > 0, "no incident event was produced while NATS was down"
        cluster.start_nats()
        wait_for(lambda: _pending(cluster) == 0, 60, "the outbox to drain after NATS came back")
        assert cluster.stop_child("worker-1") == 0  # flushes its outbox

        accepted = _accepted_msg_ids(tmp_path / "var" / "logs" / "worker-1.log")
        stream = _stream_events(cluster)
        msg_ids = [msg_id for msg_id, _ in stream]
        assert len(msg_ids) == len(set(msg_ids)), "a message was stored twice in JetStream"
        assert sorted(msg_ids) == sorted(accepted), "JetStream must hold exactly the accepted events"
        assert msg_ids == [f"{b['id']}:{b['event']}:{b['revision']}" for _, b in stream]
        wait_for(lambda: stored_events() == len(stream), 30, "the incident store to catch up")
        with sqlite3.connect(db) as conn:
            stored = {row[0] for row in conn.execute("SELECT msg_id FROM incident_events")}
        assert stored == set(msg_ids)

        def clips() -> list[str]:
            with sqlite3.connect(db) as conn:
                return [
                    r[0] for r in conn.execute("SELECT clip_path FROM incidents WHERE clip_path IS NOT NULL")
                ]

        wait_for(lambda: clips(), 30, "an evidence clip to reach the incident store")
        media = tmp_path / "var" / "incidents" / "media"
        assert all((media / path).stat().st_size > 1000 for path in clips())
    finally:
        cluster.stop()


def _pending(cluster: LocalCluster) -> int:
    with service_auth.channel(cluster.worker_address, cluster.token("operator")) as channel:
        reply = worker_pb2_grpc.WorkerServiceStub(channel).GetStatus(worker_pb2.GetStatusRequest(), timeout=5)
    return reply.outbox_pending


def test_retina_up_reports_bad_cameras_runs_the_rest_and_stops_cleanly(tmp_path):
    video = footage("intersection.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(video.read_bytes()[:150_000])
    config = write_config(
        tmp_path / "cameras.yaml",
        [
            {"id": "cam-good", "url": str(video), "loop": True, "algorithms": parking()},
            {"id": "cam-unreachable", "url": "rtsp://127.0.0.1:9/x", "algorithms": parking()},
            {"id": "cam-corrupt", "url": str(corrupt), "algorithms": parking()},
            {"id": "cam-2pt", "url": str(video), "algorithms": [
                {"name": "illegal_parking", "zones": [{"name": "z", "polygon": [[0, 0], [1, 1]]}]}]},
            {"id": "cam-typo", "url": str(video), "algorithms": [{"name": "ilegal_parking"}]},
        ],
    )  # fmt: skip
    flags = ["--nats-port", "--worker-port", "--incidents-port", "--nats-monitor-port",
             "--worker-metrics-port", "--incidents-metrics-port", "--scheduler-port",
             "--search-port"]  # fmt: skip
    ports = [free_port() for _ in flags]
    port_args = [arg for flag, port in zip(flags, ports, strict=True) for arg in (flag, str(port))]
    up = subprocess.Popen(
        python_cli("up", "--config", str(config), "--data-dir", str(tmp_path / "var"), *port_args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert "retina is up" in up.stdout.readline()
        address = f"127.0.0.1:{ports[1]}"
        token_file = tmp_path / "var" / "secrets" / "operator.token"
        token = token_file.read_text().strip()
        # The scheduler places the cameras on the worker a moment after "up".
        valid = {"cam-good", "cam-unreachable", "cam-corrupt"}
        wait_for(
            lambda: set(worker_status(address, token)) == valid,
            30,
            "the scheduler to place the valid cameras",
        )
        wait_for(lambda: worker_status(address, token)["cam-good"].frames_analysed > 2, 60, "the good camera")
        wait_for(
            lambda: state_of(worker_status(address, token)["cam-corrupt"]) == "offline",
            30,
            "corrupt camera offline",
        )
        status = worker_status(address, token)
        assert set(status) == valid
        assert state_of(status["cam-good"]) == "online"
        assert "cannot open" in status["cam-unreachable"].reason
        assert str(corrupt) in status["cam-corrupt"].reason
        operator = ["--token-file", str(token_file)]
        shown = subprocess.run(
            python_cli(*operator, "status", "--worker", address), capture_output=True, text=True
        )
        assert "cam-good" in shown.stdout and "online" in shown.stdout
        scheduler = f"127.0.0.1:{ports[6]}"
        shown = subprocess.run(
            python_cli(*operator, "status", "--scheduler", scheduler), capture_output=True, text=True
        )
        assert "worker worker-1" in shown.stdout and "alive" in shown.stdout, shown.stdout + shown.stderr
        assert "cam-good" in shown.stdout and "cpu:0" in shown.stdout
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    errors = up.stderr.read()
    assert code == 0, errors[-3000:]
    assert "cameras[3].algorithms[0].zones[0].polygon: needs at least 3 points" in errors
    assert "cameras[4].algorithms[0].name: unknown algorithm 'ilegal_parking'" in errors
    for port in ports:  # every process of the cluster is gone
        with __import__("socket").socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
