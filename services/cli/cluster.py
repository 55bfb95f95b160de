"""``retina up``: the whole cluster on one machine, as local processes.

Starts a real nats-server (JetStream, data under ``DATA_DIR/nats``), the incident store, the
search service and the worker, then assigns the configured cameras to the worker over gRPC. Stops
in reverse order on SIGTERM/Ctrl-C, so the worker flushes its outboxes before NATS goes away.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from retina.v1 import worker_pb2, worker_pb2_grpc

from services.core.config import CameraConfig
from services.core.convert import camera_to_proto
from services.core.processes import free_port, start_nats_server, start_python, stop_process, wait_for_port

log = logging.getLogger(__name__)


@dataclass
class ClusterPorts:
    nats: int = 4222
    nats_monitor: int = 8222
    worker_grpc: int = 50051
    incidents_grpc: int = 50052
    worker_metrics: int = 9101
    incidents_metrics: int = 9102
    search_grpc: int = 50053
    search_http: int = 8090
    search_metrics: int = 9103

    @classmethod
    def free(cls) -> ClusterPorts:
        """Free ports for every service (tests, and several clusters on one machine)."""
        return cls(*(free_port() for _ in fields(cls)))


def wait_until_serving(address: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Wait until a gRPC server reports SERVING through grpc.health.v1."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"service at {address} exited with code {process.returncode} while starting"
                )
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.3)
    raise RuntimeError(f"service at {address} not serving after {timeout:.0f} s")


def assign_cameras(worker_address: str, cameras: list[CameraConfig]) -> None:
    """Assign cameras to a worker over gRPC (what ``retina assign`` and ``retina up`` do)."""
    with grpc.insecure_channel(worker_address) as channel:
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        for camera in cameras:
            stub.AssignCamera(worker_pb2.AssignCameraRequest(camera=camera_to_proto(camera)), timeout=30)
            log.info("camera assigned", extra={"camera_id": camera.id, "worker": worker_address})


@dataclass
class LocalCluster:
    config_path: Path
    data_dir: Path
    ports: ClusterPorts = field(default_factory=ClusterPorts)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports.nats}"

    @property
    def worker_address(self) -> str:
        return f"127.0.0.1:{self.ports.worker_grpc}"

    @property
    def incidents_address(self) -> str:
        return f"127.0.0.1:{self.ports.incidents_grpc}"

    @property
    def search_address(self) -> str:
        return f"127.0.0.1:{self.ports.search_grpc}"

    def start(self, cameras: list[CameraConfig]) -> None:
        """Start NATS, the incident store and the worker; assign the cameras."""
        self.start_nats()
        self.start_services(cameras)

    def start_services(self, cameras: list[CameraConfig]) -> None:
        """Start the incident store, search and the worker (NATS already running); assign the cameras."""
        logs = self.data_dir / "logs"
        self.processes["incidents"] = start_python(
            [
                "incidents", "serve",
                "--data-dir", str(self.data_dir / "incidents"),
                "--nats-url", self.nats_url,
                "--grpc-port", str(self.ports.incidents_grpc),
                "--metrics-port", str(self.ports.incidents_metrics),
            ],
            log_file=logs / "incidents.log",
        )  # fmt: skip
        self.processes["search"] = start_python(
            [
                "search", "serve",
                "--config", str(self.config_path),
                "--data-dir", str(self.data_dir / "search"),
                "--nats-url", self.nats_url,
                "--grpc-port", str(self.ports.search_grpc),
                "--http-port", str(self.ports.search_http),
                "--metrics-port", str(self.ports.search_metrics),
                "--incidents-address", self.incidents_address,
            ],
            log_file=logs / "search.log",
        )  # fmt: skip
        self.processes["worker"] = start_python(
            [
                "worker",
                "--config", str(self.config_path),
                "--data-dir", str(self.data_dir / "worker"),
                "--nats-url", self.nats_url,
                "--grpc-port", str(self.ports.worker_grpc),
                "--metrics-port", str(self.ports.worker_metrics),
                "--worker-id", "worker-1",
            ],
            log_file=logs / "worker.log",
        )  # fmt: skip
        wait_until_serving(self.incidents_address, 60, self.processes["incidents"])
        wait_until_serving(self.search_address, 60, self.processes["search"])
        wait_until_serving(self.worker_address, 120, self.processes["worker"])
        assign_cameras(self.worker_address, cameras)

    def start_nats(self) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.processes["nats"] = start_nats_server(
            self.ports.nats,
            self.data_dir / "nats",
            monitor_port=self.ports.nats_monitor,
            log_file=self.data_dir / "logs" / "nats.log",
        )
        wait_for_port(self.ports.nats, 15)

    def stop_nats(self) -> None:
        process = self.processes.pop("nats", None)
        if process is not None:
            stop_process(process, "nats")

    def failed(self) -> list[str]:
        """Names of the processes that have exited."""
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop(self) -> None:
        """Stop in reverse order: worker (flushes its outboxes), search, incident store, NATS."""
        for name in ("worker", "search", "incidents", "nats"):
            process = self.processes.pop(name, None)
            if process is not None:
                try:
                    code = stop_process(process, name)
                except Exception:
                    log.exception("could not stop a process", extra={"service_process": name})
                    continue
                log.info("stopped", extra={"service_process": name, "exit_code": code})
