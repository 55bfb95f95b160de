"""The ports of a local cluster: one layout, no collisions, each port named by the flag that sets it.

Every service's default port comes from :class:`ClusterPorts`, so ``retina up``, the services'
own ``--grpc-port`` flags and the tests agree. Workers take the first free ports counting up from
``--worker-port`` and ``--worker-metrics-port``, skipping every port another service uses, so
``--workers N`` never lands on the incident store or search.
"""

from __future__ import annotations

import errno
import random
import socket
from collections import deque
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


def port_field(default: int, flag: str, help_text: str) -> int:
    """A port of the layout with the ``retina up`` flag that sets it."""
    return field(default=default, metadata={"flag": flag, "help": help_text})


class PortError(ValueError):
    """A port of the layout is taken or given twice; the message names the flag to change."""


def _ephemeral_range() -> tuple[int, int]:
    """The range the kernel takes client ports from (Linux; a common default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_HANDED_OUT: deque[int] = deque(maxlen=1024)  # ports this process chose lately, maybe not bound yet


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and not one this process handed
    out lately (two calls before either port is bound never get the same one).

    Picked below the kernel's ephemeral range, so an outgoing connection opened before the service
    binds it (a worker dialling NATS, say) cannot take it first.
    """
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randint(min(20000, low - 1000), low - 1)
        if port not in _HANDED_OUT and not port_in_use(port):
            _HANDED_OUT.append(port)
            return port
    with socket.socket() as s:  # a crowded machine: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    """True when a listener holds ``port`` on any local address."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is free
        try:
            s.bind(("", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


WORKER_BASES = ("worker_grpc", "worker_metrics")  # where the workers' ports start counting


@dataclass
class ClusterPorts:
    """Ports of a local cluster. ``worker_ports`` holds each worker's (gRPC, metrics) pair; call
    :meth:`for_workers` to fill it from the worker bases."""

    nats: int = port_field(4222, "--nats-port", "NATS client port")
    nats_monitor: int = port_field(8222, "--nats-monitor-port", "NATS monitoring (HTTP) port")
    scheduler_grpc: int = port_field(50050, "--scheduler-port", "scheduler and camera registry gRPC")
    worker_grpc: int = port_field(50051, "--worker-port", "first worker's gRPC port (the others count up)")
    incidents_grpc: int = port_field(50052, "--incidents-port", "incident store gRPC")
    search_grpc: int = port_field(50053, "--search-port", "search service gRPC")
    gateway_http: int = port_field(8080, "--gateway-port", "the gateway: REST API and console (HTTP)")
    gateway_metrics: int = port_field(9098, "--gateway-metrics-port", "gateway Prometheus metrics")
    supervisor_metrics: int = port_field(9099, "--metrics-port", "retina up's own Prometheus metrics")
    scheduler_metrics: int = port_field(9100, "--scheduler-metrics-port", "scheduler Prometheus metrics")
    worker_metrics: int = port_field(
        9101, "--worker-metrics-port", "first worker's Prometheus metrics (the others count up)"
    )
    incidents_metrics: int = port_field(9102, "--incidents-metrics-port", "incident store Prometheus metrics")
    search_metrics: int = port_field(9103, "--search-metrics-port", "search service Prometheus metrics")
    worker_ports: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def single_fields(cls) -> list:
        """The dataclass fields of the one-per-cluster ports (every field but ``worker_ports``)."""
        return [f for f in fields(cls) if f.name != "worker_ports"]

    @classmethod
    def free(cls, workers: int = 1) -> ClusterPorts:
        """Free ports for every service (tests, and several clusters on one machine)."""
        chosen: set[int] = set()

        def distinct() -> int:
            port = free_port()
            while port in chosen:
                port = free_port()
            chosen.add(port)
            return port

        singles = {f.name: distinct() for f in cls.single_fields()}
        return cls(**singles, worker_ports=[(distinct(), distinct()) for _ in range(workers)])

    def singles(self) -> dict[str, int]:
        """Field name → port of the one-per-cluster services (not the workers' bases)."""
        return {f.name: getattr(self, f.name) for f in self.single_fields() if f.name not in WORKER_BASES}

    def for_workers(self, workers: int) -> ClusterPorts:
        """A copy whose ``worker_ports`` has a pair for each of ``workers`` workers: the first ports
        from the worker bases up that no other service (or earlier worker) uses."""
        taken = set(self.singles().values()) | {p for pair in self.worker_ports for p in pair}
        pairs = list(self.worker_ports[:workers])

        def next_free(start: int) -> int:
            port = start
            while port in taken:
                port += 1
            if port > 65535:
                raise PortError(f"no free port above {start} for worker {len(pairs) + 1}")
            taken.add(port)
            return port

        grpc_port, metrics_port = self.worker_grpc, self.worker_metrics
        while len(pairs) < workers:
            grpc_port = next_free(grpc_port)
            metrics_port = next_free(metrics_port)
            pairs.append((grpc_port, metrics_port))
        return replace(self, worker_ports=pairs)

    def worker(self, index: int) -> tuple[int, int]:
        """(gRPC, metrics) ports of worker ``index`` (from 0)."""
        if index >= len(self.worker_ports):
            return self.for_workers(index + 1).worker_ports[index]
        return self.worker_ports[index]

    def named(self) -> list[tuple[str, int]]:
        """Every port with what sets it, e.g. ("--incidents-port", 50052), ("worker-2 gRPC (from
        --worker-port)", 50054)."""
        flags = {f.name: f.metadata["flag"] for f in self.single_fields()}
        out = [(flags[name], port) for name, port in self.singles().items()]
        for index, (grpc_port, metrics_port) in enumerate(self.worker_ports):
            name = f"worker-{index + 1}"
            out.append((f"{name} gRPC (from --worker-port)", grpc_port))
            out.append((f"{name} metrics (from --worker-metrics-port)", metrics_port))
        return out

    def check(self) -> None:
        """Raise PortError when two services share a port or one is already in use."""
        seen: dict[int, str] = {}
        for what, port in self.named():
            if not 0 < port < 65536:
                raise PortError(f"{what}: {port} is not a TCP port (1–65535)")
            if port in seen:
                raise PortError(f"{what} and {seen[port]} both use port {port}: give one another port")
            seen[port] = what
        for what, port in self.named():
            if port_in_use(port):
                raise PortError(
                    f"port {port} ({what}) is already in use: stop what holds it"
                    " (an earlier `retina up`?) or choose another port with that flag"
                )


DEFAULT_PORTS = ClusterPorts()
LOCAL_NATS_URL = f"nats://127.0.0.1:{DEFAULT_PORTS.nats}"


def local_address(port: int) -> str:
    """``127.0.0.1:port``: where a service of a local cluster is reached."""
    return f"127.0.0.1:{port}"
