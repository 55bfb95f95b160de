"""The images' HEALTHCHECK: asks the retina service running as the container's main process
whether it serves — grpc.health.v1 on its gRPC port (open without a token), or the gateway's
``/healthz``. The command and its flags are read from ``/proc/1/cmdline``, the ports' defaults
from the service's own settings model, so the check follows the flags the container was started
with (ports set only through RETINA_* variables are not seen: pass them as flags). Exit 0:
healthy, or no long-running service (``retina --help``, a one-off command); 1: not.
"""

from __future__ import annotations

import ssl
import sys
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from retina.services.core.settings import SERVICES

TIMEOUT_SECONDS = 4.0


def service_args(cmdline: bytes) -> list[str]:
    """The arguments after the ``retina`` entry point in a NUL-separated command line."""
    args = [arg.decode() for arg in cmdline.split(b"\0") if arg]
    for index, arg in enumerate(args):
        if Path(arg).name == "retina":
            return args[index + 1 :]
    return args[1:]


def flag(args: list[str], name: str, default: object) -> str:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args``, else ``default``."""
    option = "--" + name.replace("_", "-")
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return str(default)


def check(args: list[str]) -> bool:
    command = next((c for c in SERVICES if args[: len(c.split())] == c.split()), None)
    if command is None:
        return True
    fields = SERVICES[command].model_fields
    listen = flag(args, "listen", fields["listen"].default)
    host = "127.0.0.1" if listen in ("0.0.0.0", "::", "127.0.0.1", "localhost") else listen
    if "http_port" in fields:
        port = flag(args, "http_port", fields["http_port"].default)
        tls = flag(args, "tls_cert_file", "") != ""
        context = None
        if tls:  # its certificate names the public host, not the loopback address asked here
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        url = f"{'https' if tls else 'http'}://{host}:{port}/healthz"
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS, context=context) as reply:
            return reply.status == 200
    port = flag(args, "grpc_port", fields["grpc_port"].default)
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS
        )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main() -> int:
    try:
        healthy = check(service_args(Path("/proc/1/cmdline").read_bytes()))
    except (OSError, grpc.RpcError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
