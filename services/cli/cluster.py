"""``retina up``: the whole cluster on one machine, as local processes.

Starts a real nats-server (JetStream, data under ``DATA_DIR/nats``), the incident store, the
search service, the scheduler (with the camera registry) and the workers, then registers the
configured cameras; the scheduler places them on the workers. Stops in reverse order on
SIGTERM/Ctrl-C, so the workers flush their outboxes before NATS goes away.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from retina.v1 import registry_pb2, registry_pb2_grpc, worker_pb2, worker_pb2_grpc

from services.core.config import CameraConfig
from services.core.convert import camera_to_proto
from services.core.processes import free_port, start_nats_server, start_python, stop_process, wait_for_port

log = logging.getLogger(__name__)


@dataclass
class ClusterPorts:
    """Ports of a local cluster. Worker ``i`` (from 0) listens on ``worker_grpc + i`` and
    ``worker_metrics + i`` unless ``worker_ports`` lists its (gRPC, metrics) pair."""

    nats: int = 4222
    nats_monitor: int = 8222
    worker_grpc: int = 50051
    incidents_grpc: int = 50052
    worker_metrics: int = 9101
    incidents_metrics: int = 9102
    search_grpc: int = 50053
    search_http: int = 8090
    search_metrics: int = 9103
    scheduler_grpc: int = 50050
    scheduler_metrics: int = 9100
    worker_ports: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def free(cls, workers: int = 1) -> ClusterPorts:
        """Free ports for every service (tests, and several clusters on one machine)."""
        singles = [free_port() for f in fields(cls) if f.name != "worker_ports"]
        return cls(*singles, worker_ports=[(free_port(), free_port()) for _ in range(workers)])

    def worker(self, index: int) -> tuple[int, int]:
        """(gRPC, metrics) ports of worker ``index``."""
        if index < len(self.worker_ports):
            return self.worker_ports[index]
        return self.worker_grpc + index, self.worker_metrics + index


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
    """Assign cameras to one worker directly over gRPC (``retina assign``, without a scheduler)."""
    with grpc.insecure_channel(worker_address) as channel:
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        for camera in cameras:
            stub.AssignCamera(worker_pb2.AssignCameraRequest(camera=camera_to_proto(camera)), timeout=30)
            log.info("camera assigned", extra={"camera_id": camera.id, "worker": worker_address})


@dataclass
class LocalCluster:
    """NATS, the incident store, search, the scheduler and ``workers`` workers as local processes."""

    config_path: Path
    data_dir: Path
    ports: ClusterPorts = field(default_factory=ClusterPorts)
    workers: int = 1
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports.nats}"

    @property
    def worker_address(self) -> str:
        """The first worker's gRPC address."""
        return self.worker_address_of(0)

    def worker_address_of(self, index: int) -> str:
        return f"127.0.0.1:{self.ports.worker(index)[0]}"

    @property
    def incidents_address(self) -> str:
        return f"127.0.0.1:{self.ports.incidents_grpc}"

    @property
    def search_address(self) -> str:
        return f"127.0.0.1:{self.ports.search_grpc}"

    @property
    def scheduler_address(self) -> str:
        return f"127.0.0.1:{self.ports.scheduler_grpc}"

    def start(self, cameras: list[CameraConfig]) -> None:
        """Start everything, then register the cameras; the scheduler places them."""
        self.start_nats()
        self.start_services(cameras)

    def start_services(self, cameras: list[CameraConfig]) -> None:
        """Start the services (NATS already running), then register the cameras in the registry."""
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
        self.start_scheduler()
        for index in range(self.workers):
            self.start_worker(index)
        wait_until_serving(self.incidents_address, 60, self.processes["incidents"])
        wait_until_serving(self.search_address, 60, self.processes["search"])
        wait_until_serving(self.scheduler_address, 60, self.processes["scheduler"])
        for index in range(self.workers):
            wait_until_serving(self.worker_address_of(index), 120, self.processes[f"worker-{index + 1}"])
        import_cameras(self.scheduler_address, cameras, disable_others=True)

    def start_scheduler(self) -> None:
        self.processes["scheduler"] = start_python(
            [
                "scheduler", "serve",
                "--config", str(self.config_path),
                "--data-dir", str(self.data_dir / "scheduler"),
                "--grpc-port", str(self.ports.scheduler_grpc),
                "--metrics-port", str(self.ports.scheduler_metrics),
                "--incidents-address", self.incidents_address,
            ],
            log_file=self.data_dir / "logs" / "scheduler.log",
        )  # fmt: skip

    def start_worker(self, index: int) -> None:
        """Start worker ``index`` (from 0) as ``worker-<index + 1>``, registered with the scheduler."""
        name = f"worker-{index + 1}"
        grpc_port, metrics_port = self.ports.worker(index)
        self.processes[name] = start_python(
            [
                "worker",
                "--config", str(self.config_path),
                "--data-dir", str(self.data_dir / name),
                "--nats-url", self.nats_url,
                "--grpc-port", str(grpc_port),
                "--metrics-port", str(metrics_port),
                "--worker-id", name,
                "--scheduler", self.scheduler_address,
            ],
            log_file=self.data_dir / "logs" / f"{name}.log",
        )  # fmt: skip

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
        """Stop in reverse order: scheduler, workers (they flush their outboxes), search, store, NATS."""
        workers = sorted(name for name in self.processes if name.startswith("worker-"))
        for name in ["scheduler", *workers, "search", "incidents", "nats"]:
            process = self.processes.pop(name, None)
            if process is not None:
                try:
                    code = stop_process(process, name)
                except Exception:
                    log.exception("could not stop a process", extra={"service_process": name})
                    continue
                log.info("stopped", extra={"service_process": name, "exit_code": code})


def import_cameras(
    scheduler_address: str, cameras: list[CameraConfig], disable_others: bool = False
) -> tuple[int, int, int]:
    """Create or update cameras in the registry; return (created, updated, unchanged).

    ``disable_others`` (``retina up``: the file is the truth) disables registered cameras the file
    no longer lists; their records and history stay.
    """
    created = updated = unchanged = 0
    with grpc.insecure_channel(scheduler_address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        if disable_others:
            listed = {camera.id for camera in cameras}
            page_token = ""
            while True:
                page = stub.ListCameras(
                    registry_pb2.ListCamerasRequest(enabled=True, page_size=1000, page_token=page_token),
                    timeout=10,
                )
                for record in page.cameras:
                    if record.camera.id not in listed:
                        stub.UpdateCamera(
                            registry_pb2.UpdateCameraRequest(camera=record.camera, enabled=False), timeout=10
                        )
                        log.info(
                            "camera not in the file any more: disabled", extra={"camera_id": record.camera.id}
                        )
                page_token = page.next_page_token
                if not page_token:
                    break
        for camera in cameras:
            message = camera_to_proto(camera)
            try:
                stub.CreateCamera(registry_pb2.CreateCameraRequest(camera=message), timeout=10)
                created += 1
                continue
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
            current = stub.GetCamera(registry_pb2.GetCameraRequest(camera_id=camera.id), timeout=10)
            if current.camera == message and current.enabled:
                unchanged += 1
                continue
            stub.UpdateCamera(registry_pb2.UpdateCameraRequest(camera=message, enabled=True), timeout=10)
            updated += 1
    return created, updated, unchanged
