"""What the command modules share: default addresses, config loading, the global ``--log-level``."""

from __future__ import annotations

import sys

from retina.services.core.config import LoadedConfig, RetinaConfig, load_config, require_cameras
from retina.services.core.logs import setup_logging
from retina.services.core.ports import ClusterPorts

DEFAULT_PORTS = ClusterPorts()
WORKER_ADDRESS = f"127.0.0.1:{DEFAULT_PORTS.worker_grpc}"
SCHEDULER_ADDRESS = f"127.0.0.1:{DEFAULT_PORTS.scheduler_grpc}"
INCIDENTS_ADDRESS = f"127.0.0.1:{DEFAULT_PORTS.incidents_grpc}"
SEARCH_ADDRESS = f"127.0.0.1:{DEFAULT_PORTS.search_grpc}"
NATS_URL = f"nats://127.0.0.1:{DEFAULT_PORTS.nats}"

LISTEN_HELP = "address for gRPC and metrics (0.0.0.0 in a pod)"


class Options:
    """Options given before the command (``retina --log-level DEBUG up ...``)."""

    log_level = "INFO"


def load(path: str, *, cameras_required: bool = False) -> LoadedConfig:
    """Load a config; report rejected cameras on stderr and carry on with the others.

    ``cameras_required``: a file with no camera left to run is a ConfigError ("no cameras: ...").
    """
    loaded = load_config(path)
    for line in loaded.camera_errors:
        print(f"config error (camera skipped): {line}", file=sys.stderr)
    return require_cameras(loaded, path) if cameras_required else loaded


def start_logging(service: str) -> None:
    """JSON log lines on stderr for a long-running service, at the ``--log-level`` given."""
    setup_logging(service, Options.log_level)


def service_config(config_path: str, nats_url: str | None, service: str) -> RetinaConfig:
    """Logging for a long-running service, and its config with ``--nats-url`` applied."""
    start_logging(service)
    config = load(config_path).config
    if nats_url:
        config.nats.url = nats_url
    return config
