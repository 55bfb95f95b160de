"""Prometheus metrics endpoint shared by the services."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(port: int, host: str) -> int:
    """Expose /metrics on host:port (port 0 picks a free one); return the bound port."""
    server, _thread = start_http_server(port, addr=host)
    bound = server.server_address[1]
    log.info("metrics listening", extra={"metrics_port": bound})
    return bound
