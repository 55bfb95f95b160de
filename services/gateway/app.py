"""The gateway's FastAPI application: the REST API under ``/api/v1`` and the error mapping.

Every route but ``/healthz`` and ``/readyz`` needs a logged-in user or an API token (see
:mod:`~retina.services.gateway.auth`). Errors are JSON ``{"detail": ...}``: 401 unauthenticated,
403 wrong role or missing CSRF token, 404 unknown or outside the caller's scope (the same answer),
409 a dispatch step not allowed now, 413 an upload over the limit, 422 bad input naming the field,
503 a service behind the gateway is unreachable (or a camera's frame is not to be had now).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2

from retina.services.core.settings import GatewaySettings
from retina.services.gateway import (
    api_admin,
    api_assessment,
    api_cameras,
    api_cases,
    api_incidents,
    api_search,
    api_session,
    api_users,
    console,
    events,
    open311,
)
from retina.services.gateway.accounts import AccountStore
from retina.services.gateway.backends import Backends
from retina.services.gateway.console import mount_console

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

# gRPC status of a backend → HTTP status of the gateway's answer.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
}


@dataclass
class GatewayState:
    """What the routes share: settings, the account store, the backends, the live-event source."""

    settings: GatewaySettings
    accounts: AccountStore
    backends: Backends
    events: events.EventSource


def create_app(state: GatewayState) -> FastAPI:
    """The application, with its state in ``app.state`` (``accounts``, ``backends``, ...)."""
    app = FastAPI(
        title="retina gateway",
        version="1",
        description="The authenticated front door of retina: incidents and the dispatch loop,"
        " city-management cases, search by image, cameras, the cluster, the audit trail, and live events.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # the interactive pages load scripts from a CDN; city networks are closed
        redoc_url=None,
    )
    app.state.settings = state.settings
    app.state.accounts = state.accounts
    app.state.backends = state.backends
    app.state.events = state.events

    @app.exception_handler(grpc.aio.AioRpcError)
    async def backend_error(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        code = exc.code()
        status = HTTP_STATUS.get(code)
        if status is None:
            log.warning(
                "a service behind the gateway failed",
                extra={"path": request.url.path, "grpc_code": code.name, "error": exc.details()},
            )
            return JSONResponse({"detail": "a service behind the gateway is unavailable; try again"}, 503)
        return JSONResponse({"detail": exc.details() or code.name.lower()}, status)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "the account database is down"}})
    async def readyz() -> JSONResponse:
        """Readiness: 503 only when the gateway's own database fails (without it nobody can log
        in). NATS and the services behind it are reported but do not make it unready: with search
        down, dispatchers still work incidents, so no replica should leave the load balancer."""
        checks: dict[str, str] = {}
        try:
            state.accounts.count_users()
            checks["database"] = "ok"
        except Exception as exc:  # readiness reports any failure instead of raising it
            checks["database"] = f"failed: {exc.__class__.__name__}"
        checks["nats"] = "ok" if state.events.connected else "not connected"
        for name, stub in state.backends.health.items():
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                serving = answer.status == health_pb2.HealthCheckResponse.SERVING
                checks[name] = "ok" if serving else "not serving"
            except grpc.aio.AioRpcError as exc:
                checks[name] = f"unreachable: {exc.code().name}"
        ready = checks["database"] == "ok"
        degraded = sorted(name for name, value in checks.items() if value != "ok")
        return JSONResponse({"ready": ready, "degraded": degraded, "checks": checks}, 200 if ready else 503)

    for module in (
        api_session,
        api_incidents,
        api_cases,
        api_assessment,
        api_search,
        api_cameras,
        api_admin,
        api_users,
        events,
        console,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    open311.install(app)  # GeoReport v2 has its own paths: /open311/v2/...
    mount_console(app, state.settings)
    return app
