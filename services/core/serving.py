"""What every long-running service does the same way: signals, the gRPC server, health, timestamps."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from retina.services.core.service_auth import Authenticator, AuthInterceptor


def to_timestamp(epoch: float | None) -> Timestamp | None:
    """A protobuf Timestamp for epoch seconds (None stays None)."""
    if epoch is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(epoch * 1e9))
    return stamp


async def start_grpc_server(
    listen: str,
    port: int,
    register: Callable[[grpc.aio.Server], None],
    service_name: str,
    max_message_bytes: int | None = None,
    *,
    auth: Authenticator | None,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """Start a gRPC server with the service ``register`` adds and grpc.health.v1 reporting SERVING.

    ``max_message_bytes`` raises gRPC's 4 MB limit on requests (photo uploads). ``auth`` (from
    :func:`~retina.services.core.service_auth.configure`) refuses every call its access table does
    not allow the caller's token; None accepts every call (``--allow-unauthenticated``).
    """
    options = [("grpc.max_receive_message_length", max_message_bytes)] if max_message_bytes else None
    interceptors = [AuthInterceptor(auth)] if auth is not None else None
    server = grpc.aio.server(options=options, interceptors=interceptors)
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{listen}:{port}")
    await server.start()
    for name in ("", service_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer, bound


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile (the pause of every periodic loop)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` in an event loop; SIGTERM or SIGINT sets ``stop`` for a clean shutdown."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())
