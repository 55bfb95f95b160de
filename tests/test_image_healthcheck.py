"""The images' HEALTHCHECK (docker/healthcheck.py) asks the service the container runs — found from
its command line — over grpc.health.v1, or the gateway's /healthz, and fails when it does not
serve."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from retina.services.core.ports import free_port

SCRIPT = Path(__file__).resolve().parents[1] / "docker" / "healthcheck.py"
spec = importlib.util.spec_from_file_location("image_healthcheck", SCRIPT)
healthcheck = importlib.util.module_from_spec(spec)
spec.loader.exec_module(healthcheck)


@pytest.fixture
def grpc_service() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    yield port, servicer
    server.stop(None)


def test_the_service_and_its_flags_come_from_the_command_line():
    cmdline = b"/opt/retina/bin/python\0/opt/retina/bin/retina\0incidents\0serve\0--grpc-port\x0050052\0"
    args = healthcheck.service_args(cmdline)
    assert args == ["incidents", "serve", "--grpc-port", "50052"]
    assert healthcheck.flag(args, "grpc_port", 1) == "50052"
    assert healthcheck.flag(["--grpc-port=7"], "grpc_port", 1) == "7"
    assert healthcheck.flag(args, "listen", "127.0.0.1") == "127.0.0.1"  # the model's default
    assert healthcheck.check(["--help"]) and healthcheck.check(["cameras", "list"])  # no service: healthy


def test_a_grpc_service_is_healthy_while_it_serves(grpc_service):
    port, servicer = grpc_service
    args = ["scheduler", "serve", "--listen", "0.0.0.0", "--grpc-port", str(port)]
    assert healthcheck.check(args)
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # shutting down
    assert not healthcheck.check(args)
    with pytest.raises(grpc.RpcError):  # nothing listens: main() reports it and exits 1
        healthcheck.check(["worker", "--grpc-port", str(free_port())])


def test_the_gateway_is_asked_for_healthz():
    answers = {"/healthz": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(answers.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert healthcheck.check(["gateway", "serve", "--http-port", str(server.server_port)])
        answers["/healthz"] = 503
        with pytest.raises(OSError):  # urllib raises HTTPError (an OSError) on 503
            healthcheck.check(["gateway", "serve", "--http-port", str(server.server_port)])
    finally:
        server.shutdown()
