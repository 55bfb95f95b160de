"""``retina up``: the whole cluster on one machine, as local processes.

Starts a real nats-server (JetStream, data under ``DATA_DIR/nats``), the incident store, the
search service, the scheduler (with the camera registry) and the workers, then registers the
configured cameras; the scheduler places them on the workers. Supervises them: a process that
exits is restarted with backoff while the others keep running. Stops in reverse order on
SIGTERM/Ctrl-C, so the workers flush their outboxes before NATS goes away.

Nothing in it answers without credentials: on first start it creates a token per role under
``DATA_DIR/secrets`` (:mod:`~retina.services.core.service_auth`), starts NATS with a user per role,
and gives each process the auth file and only its own token file, as the Kubernetes manifests do.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from retina.services.cli.clients import import_cameras, is_serving
from retina.services.cli.supervisor import Supervisor
from retina.services.core import service_auth
from retina.services.core.config import CameraConfig, load_config
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
    # More `retina gateway serve` settings as flags (e.g. ["--verify-seconds", "30"]).
    gateway_flags: list[str] = field(default_factory=list)

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
    def secrets(self) -> Path:
        """The role tokens and the auth file of their digests."""
        return self.data_dir / "secrets"

    @property
    def auth_file(self) -> Path:
        return self.secrets / service_auth.AUTH_FILE

    def token_file(self, role: str) -> Path:
        return service_auth.token_path(self.secrets, role)

    def token(self, role: str) -> str:
        """``role``'s token (``operator``: what the command line and the tests call with)."""
        return service_auth.read_token(self.token_file(role))

    def create_credentials(self) -> None:
        """The role tokens (kept once made) and the NATS configuration of a user per role (the
        gateway's including the consumers of the configured webhooks)."""
        service_auth.create_credentials(self.secrets)
        webhooks = [webhook.name for webhook in load_config(self.config_path).config.webhooks]
        self.nats_config.write_text(service_auth.nats_config(self.secrets, webhooks=webhooks))

    @property
    def nats_config(self) -> Path:
        return self.secrets / "nats.conf"

    def _auth_args(self, role: str) -> list[str]:
        return ["--auth-file", str(self.auth_file), "--token-file", str(self.token_file(role))]

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

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway_http}"

    @property
    def gateway_data_dir(self) -> Path:
        """The gateway's accounts and audit trail (``retina users --data-dir`` this)."""
        return self.data_dir / "gateway"

    def start(self, cameras: list[CameraConfig]) -> None:
        """Start everything, then register the cameras; the scheduler places them."""
        self.start_nats()
        self.start_services(cameras)

    def start_services(self, cameras: list[CameraConfig]) -> None:
        """Start the services (NATS already running), then register the cameras in the registry."""
        service_auth.create_credentials(self.secrets)
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
        import_cameras(self.scheduler_address, cameras, disable_others=True, token=self.token("operator"))
        self.start_gateway()

    def start_gateway(self) -> None:
        """Start the gateway (the one service meant to be reached from other machines) and wait
        until it answers HTTP."""
        port = self.ports.gateway_http
        log_file = self.logs / "gateway.log"
        self.supervisor.start(
            "gateway",
            lambda: start_python(self.gateway_args(), log_file=log_file),
            log_file,
            lambda: port_open(port),
        )
        deadline = time.monotonic() + 60
        while not port_open(port):
            self.supervisor.check()
            if time.monotonic() >= deadline:
                raise RuntimeError(f"the gateway is not answering on port {port} after 60 s")
            time.sleep(0.3)

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
            "--config", str(self.config_path),  # the cases section: categories, routing, calendar
            "--data-dir", str(self.data_dir / "incidents"),
            "--nats-url", self.nats_url,
            "--grpc-port", str(self.ports.incidents_grpc),
            "--metrics-port", str(self.ports.incidents_metrics),
            *self._auth_args("incidents"),
        ]  # fmt: skip

    def search_args(self) -> list[str]:
        return [
            "search", "serve",
            "--config", str(self.config_path),
            "--data-dir", str(self.data_dir / "search"),
            "--nats-url", self.nats_url,
            "--grpc-port", str(self.ports.search_grpc),
            "--metrics-port", str(self.ports.search_metrics),
            "--incidents-address", self.incidents_address,
            "--replica-id", "",  # one instance: the shared consumer search-index, as before
            *self._auth_args("search"),
        ]  # fmt: skip

    def scheduler_args(self) -> list[str]:
        return [
            "scheduler", "serve",
            "--config", str(self.config_path),
            "--data-dir", str(self.data_dir / "scheduler"),
            "--grpc-port", str(self.ports.scheduler_grpc),
            "--metrics-port", str(self.ports.scheduler_metrics),
            "--incidents-address", self.incidents_address,
            *self._auth_args("scheduler"),
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
            *self._auth_args("worker"),
        ]  # fmt: skip

    def gateway_args(self) -> list[str]:
        return [
            "gateway", "serve",
            "--config", str(self.config_path),  # plates (the detector for redaction), webhooks
            "--data-dir", str(self.gateway_data_dir),
            "--nats-url", self.nats_url,
            "--http-port", str(self.ports.gateway_http),
            "--metrics-port", str(self.ports.gateway_metrics),
            "--incidents-address", self.incidents_address,
            "--search-address", self.search_address,
            "--scheduler-address", self.scheduler_address,
            *self._auth_args("gateway"),
            *self.gateway_flags,
        ]  # fmt: skip

    def service_args(self) -> dict[str, list[str]]:
        """Every service's command line, by child name."""
        workers = {f"worker-{index + 1}": self.worker_args(index) for index in range(self.workers)}
        return {
            "incidents": self.incidents_args(),
            "search": self.search_args(),
            "scheduler": self.scheduler_args(),
            **workers,
            "gateway": self.gateway_args(),
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
        self.create_credentials()

        def start() -> subprocess.Popen:
            return start_nats_server(
                self.ports.nats,
                self.data_dir / "nats",
                monitor_port=self.ports.nats_monitor,
                log_file=log_file,
                config_file=self.nats_config,
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
        """Stop in reverse order: gateway, scheduler, workers (they flush their outboxes), search,
        store, NATS."""
        workers = sorted(name for name in self.supervisor.children if name.startswith("worker-"))
        for name in ["gateway", "scheduler", *workers, "search", "incidents", "nats"]:
            process = self.supervisor.forget(name)
            if process is not None:
                try:
                    code = stop_process(process, name, timeout=STOP_TIMEOUT_SECONDS)
                except Exception:
                    log.exception("could not stop a process", extra={"service_process": name})
                    continue
                log.info("stopped", extra={"service_process": name, "exit_code": code})
