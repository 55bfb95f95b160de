"""``retina up`` as a supervisor: ports without collisions, children restarted, a self-healing bus."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nats
import pytest

from retina.services.cli.supervisor import ChildCannotStart, Supervisor
from retina.services.core import bus, service_auth
from retina.services.core.ports import ClusterPorts, PortError, free_port, port_in_use
from retina.v1 import scheduler_pb2, scheduler_pb2_grpc, worker_pb2, worker_pb2_grpc
from tests.conftest import footage, python_cli, wait_for
from tests.test_cluster import parking, write_config


def test_default_layout_gives_every_worker_its_own_ports():
    ports = ClusterPorts().for_workers(5)
    used = [port for _, port in ports.named()]
    assert len(used) == len(set(used)), ports.named()
    assert ports.worker(0) == (50051, 9101), "one worker keeps the documented defaults"
    singles = set(ports.singles().values())
    assert not singles & {p for pair in ports.worker_ports for p in pair}
    assert ports.worker(1) == (50054, 9104)  # skips the incident store's 50052/9102 and search's 50053/9103


def test_port_check_names_the_flag():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        ports = ClusterPorts.free(workers=2)
        ports.incidents_grpc = taken
        with pytest.raises(PortError, match=rf"port {taken} \(--incidents-port\) is already in use"):
            ports.check()
    ports = ClusterPorts.free(workers=1)
    ports.search_grpc = ports.incidents_grpc
    with pytest.raises(PortError, match="--search-port and --incidents-port both use port"):
        ports.check()


def test_retina_up_refuses_a_busy_port_before_starting_anything(tmp_path):
    config = write_config(tmp_path / "cameras.yaml", [{"id": "cam", "url": "rtsp://127.0.0.1:9/x"}])
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            python_cli("up", "--config", str(config), "--data-dir", str(tmp_path / "var"),
                       "--scheduler-port", str(port)),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"port {port} (--scheduler-port) is already in use" in done.stderr
    assert not (tmp_path / "var" / "logs").exists(), "nothing may start before the ports are checked"


def _child(log: Path, code: int, seconds: float = 0.0):
    script = (
        f"import time, sys; print('model not found: /x.onnx', flush=True); time.sleep({seconds}); "
        f"sys.exit({code})"
    )

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", script], stdout=log.open("ab"), stderr=subprocess.STDOUT
        )

    return start


def test_supervisor_restarts_with_backoff_and_gives_up_with_the_reason(tmp_path):
    supervisor = Supervisor(max_failures=3, stable_seconds=60, first_delay=0.2, max_delay=1)
    supervisor.start("steady", _child(tmp_path / "steady.log", 0, seconds=60), tmp_path / "steady.log")
    supervisor.start("broken", _child(tmp_path / "broken.log", 3), tmp_path / "broken.log")
    restarts = []
    with pytest.raises(ChildCannotStart) as gave_up:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            restarts += supervisor.check()
            time.sleep(0.05)
    assert restarts == ["broken", "broken"], "restarted twice, then the third exit gives up"
    message = str(gave_up.value)
    assert "broken exited 3 times in a row (last exit code 3)" in message
    assert "model not found: /x.onnx" in message
    assert supervisor.process("steady").poll() is None, "the other child keeps running"
    supervisor.forget("steady").kill()


def scrape(port: int) -> str:
    """The Prometheus metrics served on ``port`` of this machine."""
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def free_block(size: int) -> int:
    """The first of ``size`` consecutive free ports, below the kernel's ephemeral range."""
    while True:
        base = free_port()
        if all(not port_in_use(port) for port in range(base, base + size)):
            return base


@pytest.mark.slow
def test_retina_up_survives_its_own_faults(tmp_path):
    """The README's `retina up --workers 2` with the default port structure: a killed worker, a
    killed nats-server and a deleted INCIDENTS stream are all recovered while the cluster runs."""
    video = footage("intersection.mp4")
    # Every port of the layout, set by its flag, in the order of the default layout shifted to a
    # free block: worker-2's ports would land on the incident store's, so they must skip them.
    fields = ClusterPorts.single_fields()
    base = free_block(len(fields) + 4)  # the singles, then worker-2's pair above them
    ports = ClusterPorts(**{f.name: base + i for i, f in enumerate(fields)}).for_workers(2)
    assert ports.worker_grpc + 1 == ports.incidents_grpc
    assert ports.worker_metrics + 1 == ports.incidents_metrics
    assert not set(ports.worker(1)) & set(ports.singles().values()), ports.named()
    flags = [arg for f in fields for arg in (f.metadata["flag"], str(getattr(ports, f.name)))]
    scheduler = f"127.0.0.1:{ports.scheduler_grpc}"
    config = write_config(
        tmp_path / "cameras.yaml",
        [{"id": "cam-a", "url": str(video), "loop": True, "algorithms": parking(dwell_seconds=2)},
         {"id": "cam-b", "url": str(video), "loop": True, "algorithms": parking(dwell_seconds=2)}],
        nats_url=f"nats://127.0.0.1:{ports.nats}",
    )  # fmt: skip
    extra = "scheduler: {heartbeat_seconds: 1, lease_seconds: 4}\nworker: {capacity_fps: 20}\n"
    config.write_text(config.read_text() + extra)
    up = subprocess.Popen(
        python_cli("up", "--config", str(config), "--data-dir", str(tmp_path / "var"),
                   "--workers", "2", *flags),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    db = tmp_path / "var" / "incidents" / "incidents.sqlite"
    operator = tmp_path / "var" / "secrets" / "operator.token"  # made by retina up

    def placed() -> dict[str, str]:
        with service_auth.channel(scheduler, service_auth.read_token(operator)) as channel:
            reply = scheduler_pb2_grpc.SchedulerServiceStub(channel).GetClusterStatus(
                scheduler_pb2.GetClusterStatusRequest(), timeout=5
            )
        return {a.camera_id: a.worker_id for a in reply.assignments if a.health.frames_analysed > 0}

    def analysed_now() -> set[str]:
        """Cameras the live workers analyse (asked from the workers, not the scheduler's memory)."""
        cameras = set()
        for index in range(2):
            address = f"127.0.0.1:{ports.worker(index)[0]}"
            with service_auth.channel(address, service_auth.read_token(operator)) as channel:
                reply = worker_pb2_grpc.WorkerServiceStub(channel).GetStatus(
                    worker_pb2.GetStatusRequest(), timeout=5
                )
            cameras |= {c.camera_id for c in reply.cameras if c.frames_analysed > 0}
        return cameras

    def stored() -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM incident_events").fetchone()[0]

    def pid_of(pattern: str) -> int | None:
        found = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split()
        return int(found[0]) if found else None

    try:
        line = up.stdout.readline()
        assert "retina is up" in line, line + up.stderr.read()[-3000:]
        wait_for(lambda: set(placed()) == {"cam-a", "cam-b"}, 90, "both cameras analysed")

        # kill -9 one worker: the cluster keeps running, the worker comes back, cameras run again.
        worker_2 = f"--data-dir {tmp_path / 'var' / 'worker-2'} "  # this cluster's, not another's
        killed = pid_of(worker_2)
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: pid_of(worker_2) not in (None, killed), 30, "worker-2 restarted")
        wait_for(lambda: analysed_now() == {"cam-a", "cam-b"}, 60, "both cameras analysed after kill -9")
        assert up.poll() is None, "retina up must not stop when a worker dies"

        # kill -9 nats-server: restarted on the same port and store; every service carries on.
        wait_for(lambda: stored() > 0, 90, "an incident event in the store")
        os.kill(pid_of(f"nats-server -a 127.0.0.1 -p {ports.nats} "), signal.SIGKILL)
        before = stored()
        wait_for(lambda: stored() > before, 90, "incident events stored again after NATS was killed")

        # Delete the INCIDENTS stream: the workers and the store recreate it; events flow again.
        async def delete_stream() -> None:
            url, token = f"nats://127.0.0.1:{ports.nats}", service_auth.read_token(operator)
            nc = await nats.connect(url, user="operator", password=token)
            await nc.jetstream().delete_stream(bus.INCIDENT_STREAM)
            await nc.close()

        asyncio.run(delete_stream())
        before = stored()
        wait_for(lambda: stored() > before, 90, "incident events stored after the stream was deleted")
        metrics = scrape(ports.incidents_metrics)  # the incident store's: it recreated its consumer
        assert 'retina_bus_recreated_total{resource="consumer INCIDENTS/incident-store"} 1.0' in metrics
        supervisor = scrape(ports.supervisor_metrics)  # retina up's own (--metrics-port)
        assert 'retina_up_restarts_total{process="worker-2"} 1.0' in supervisor
        assert 'retina_up_restarts_total{process="nats"} 1.0' in supervisor
        assert up.poll() is None
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(90)
    errors = up.stderr.read()
    assert code == 0, errors[-3000:]
    assert "process exited; restarting it" in errors and '"service_process": "worker-2"' in errors


def test_retina_up_refuses_a_file_with_no_cameras(tmp_path):
    config = tmp_path / "cameras.yaml"
    config.write_text("")
    done = subprocess.run(
        python_cli("up", "--config", str(config), "--data-dir", str(tmp_path / "var")),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"config error: no cameras: {config}" in done.stderr
    assert not (tmp_path / "var").exists()


def test_a_child_that_was_serving_is_restarted_however_often_it_is_killed(tmp_path):
    supervisor = Supervisor(max_failures=3, stable_seconds=60, first_delay=0.05, max_delay=0.1)
    supervisor.start(
        "worker", _child(tmp_path / "w.log", 0, seconds=60), tmp_path / "w.log", ready=lambda: True
    )
    for _ in range(6):  # more kills than max_failures: each time it was serving, so it never gives up
        deadline = time.monotonic() + 5
        while not supervisor.children["worker"].ready and time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.02)
        killed = supervisor.process("worker")
        killed.kill()
        killed.wait()
        deadline = time.monotonic() + 5
        while supervisor.process("worker") is killed and time.monotonic() < deadline:
            supervisor.check()
            time.sleep(0.02)
        assert supervisor.process("worker") is not killed, "restarted"
    supervisor.forget("worker").kill()


def test_free_ports_handed_out_together_are_distinct():
    """Tests pick several ports before any is bound: they must never get one twice."""
    picked = [free_port() for _ in range(500)]
    assert len(set(picked)) == len(picked)
