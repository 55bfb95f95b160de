"""``retina up``: the whole cluster on one machine, as local processes.

Starts a real nats-server (JetStream, data under ``DATA_DIR/nats``), the incident store, the
search service, the scheduler (with the camera registry) and the workers, then registers the
configured cameras; the scheduler places them on the workers. Supervises them: a process that
exits is restarted with backoff while the others keep running. Stops in reverse order on
SIGTERM/Ctrl-C, so the workers flush their outboxes before NATS goes away.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from retina.services.cli.clients import import_cameras, is_serving
from retina.services.cli.supervisor import Supervisor
from retina.services.core.config import CameraConfig
from retina.services.core.ports import ClusterPorts
from retina.services.core.processes import port_open, start_nats_server, start_python, stop_process

log = logging.getLogger(__name__)

# A worker's clean stop joins its analysis (up to 10 s), drains its incident sink (up to 10 s), then
# its outboxes (up to 10 s); past this it is killed and what is left waits in its outbox on disk.
STOP_TIMEOUT_SECONDS = 45.0


@dataclass
class LocalCluster:
    """NATS, the incident store, search, the scheduler and ``workers`` workers as local processes.

    Every process runs under a :class:`Supervisor`: call :meth:`supervise` periodically and a
    process that exits is restarted (a worker re-registers and the scheduler gives its cameras back,
    with their open incidents, exactly as when a worker machine fails and returns).
    """

    config_path: Path
    data_dir: Path
    ports: ClusterPorts = field(default_factory=ClusterPorts)
    workers: int = 1
    supervisor: Supervisor = field(default_factory=Supervisor)

    def __post_init__(self) -> None:
        self.ports = self.ports.for_workers(self.workers)

    @property
    def processes(self) -> dict[str, subprocess.Popen]:
        """The current process of every supervised child, by name (a snapshot: see ``stop_child``)."""
        return {name: c.process for name, c in self.supervisor.children.items() if c.process is not None}

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

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
        self._supervise("incidents", self.incidents_args(), self.incidents_address)
        self._supervise("search", self.search_args(), self.search_address)
        self.start_scheduler()
        for index in range(self.workers):
            self.start_worker(index)
        self.wait_serving(self.incidents_address, 60)
        self.wait_serving(self.search_address, 60)
        self.wait_serving(self.scheduler_address, 60)
        for index in range(self.workers):
            self.wait_serving(self.worker_address_of(index), 120)
        import_cameras(self.scheduler_address, cameras, disable_others=True)

    def wait_serving(self, address: str, timeout: float) -> None:
        """Wait until the gRPC server at ``address`` is SERVING, restarting children that exit
        meanwhile (raises ChildCannotStart when one gives up, RuntimeError on the time-out)."""
        deadline = time.monotonic() + timeout
        while not is_serving(address):
            self.supervisor.check()
            if time.monotonic() >= deadline:
                raise RuntimeError(f"service at {address} not serving after {timeout:.0f} s")
            time.sleep(0.3)

    # The command line of each service: its settings as flags, named as in its settings model
    # (retina.services.core.settings) and as the Kubernetes manifests pass them.

    def incidents_args(self) -> list[str]:
        return [
            "incidents", "serve",
            "--data-dir", str(self.data_dir / "incidents"),
            "--nats-url", self.nats_url,
            "--grpc-port", str(self.ports.incidents_grpc),
            "--metrics-port", str(self.ports.incidents_metrics),
        ]  # fmt: skip

    def search_args(self) -> list[str]:
        return [
            "search", "serve",
            "--config", str(self.config_path),
            "--data-dir", str(self.data_dir / "search"),
            "--nats-url", self.nats_url,
            "--grpc-port", str(self.ports.search_grpc),
            "--http-port", str(self.ports.search_http),
            "--metrics-port", str(self.ports.search_metrics),
            "--incidents-address", self.incidents_address,
        ]  # fmt: skip

    def scheduler_args(self) -> list[str]:
        return [
            "scheduler", "serve",
            "--config", str(self.config_path),
            "--data-dir", str(self.data_dir / "scheduler"),
            "--grpc-port", str(self.ports.scheduler_grpc),
            "--metrics-port", str(self.ports.scheduler_metrics),
            "--incidents-address", self.incidents_address,
        ]  # fmt: skip

    def worker_args(self, index: int) -> list[str]:
        """Worker ``index`` (from 0) runs as ``worker-<index + 1>``, registered with the scheduler."""
        name = f"worker-{index + 1}"
        grpc_port, metrics_port = self.ports.worker(index)
        return [
            "worker",
            "--config", str(self.config_path),
            "--data-dir", str(self.data_dir / name),
            "--nats-url", self.nats_url,
            "--grpc-port", str(grpc_port),
            "--metrics-port", str(metrics_port),
            "--worker-id", name,
            "--scheduler", self.scheduler_address,
        ]  # fmt: skip

    def service_args(self) -> dict[str, list[str]]:
        """Every service's command line, by child name."""
        workers = {f"worker-{index + 1}": self.worker_args(index) for index in range(self.workers)}
        return {
            "incidents": self.incidents_args(),
            "search": self.search_args(),
            "scheduler": self.scheduler_args(),
            **workers,
        }

    def start_scheduler(self) -> None:
        self._supervise("scheduler", self.scheduler_args(), self.scheduler_address)

    def start_worker(self, index: int) -> None:
        """Start worker ``index`` (from 0) as ``worker-<index + 1>``, registered with the scheduler."""
        self._supervise(f"worker-{index + 1}", self.worker_args(index), self.worker_address_of(index))

    def _supervise(self, name: str, args: list[str], address: str) -> None:
        """Start ``retina ARGS`` as child ``name``; it is ready once its gRPC server at ``address``
        reports SERVING."""
        log_file = self.logs / f"{name}.log"
        self.supervisor.start(
            name, lambda: start_python(args, log_file=log_file), log_file, lambda: is_serving(address)
        )

    def start_nats(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_file = self.logs / "nats.log"

        def start() -> subprocess.Popen:
            return start_nats_server(
                self.ports.nats,
                self.data_dir / "nats",
                monitor_port=self.ports.nats_monitor,
                log_file=log_file,
            )

        self.supervisor.start("nats", start, log_file, lambda: port_open(self.ports.nats))
        if self.supervisor.process("nats") is None:
            raise RuntimeError(f"nats-server did not start; see {log_file}")

    def stop_child(self, name: str) -> int | None:
        """Stop one process on purpose (SIGTERM; it is not restarted); return its exit code."""
        process = self.supervisor.forget(name)
        return None if process is None else stop_process(process, name)

    def stop_nats(self) -> None:
        """Stop NATS on purpose (tests of an outage): it is not restarted until ``start_nats``."""
        self.stop_child("nats")

    def supervise(self) -> list[str]:
        """Restart the children that exited; return their names (ChildCannotStart if one gave up)."""
        return self.supervisor.check()

    def stop(self) -> None:
        """Stop in reverse order: scheduler, workers (they flush their outboxes), search, store, NATS."""
        workers = sorted(name for name in self.supervisor.children if name.startswith("worker-"))
        for name in ["scheduler", *workers, "search", "incidents", "nats"]:
            process = self.supervisor.forget(name)
            if process is not None:
                try:
                    code = stop_process(process, name, timeout=STOP_TIMEOUT_SECONDS)
                except Exception:
                    log.exception("could not stop a process", extra={"service_process": name})
                    continue
                log.info("stopped", extra={"service_process": name, "exit_code": code})
